// scanlogin confirm page: opened by scanning the code a website shows
// (getwxacodeunlimit with page "pages/scanlogin/index"; the scene id arrives
// as query.scene). Opened with query.view = "account" (or from the button
// after a login) it is the person's account: what the hub keeps about them,
// and deleting it. The logic lives in logic.js, tested with `node --test`.
const logic = require('./logic.js');

// Your hub's public URL. Add it to the mini-program's "request" domain list
// (mp.weixin.qq.com → 开发管理 → 服务器域名). app.js may override it with
// globalData.scanloginHub.
const HUB = 'https://hub.example.com';

function context() {
  const app = typeof getApp === 'function' ? getApp() : null;
  const hub = (app && app.globalData && app.globalData.scanloginHub) || HUB;
  return { wx, hub };
}

Page({
  data: {
    step: 'loading', // loading | ask | sending | confirmed | cancelled | account | deleting | deleted | error
    site: null, // { id, name, origin }
    browser: null, // { ip, userAgent, label, place, far }
    nickname: '',
    avatarUrl: '', // a temporary file from chooseAvatar, or an https URL
    phoneShared: false, // the person tapped "share my phone number" and agreed
    error: '',
    retryable: false,
    account: null, // logic.describeAccount of the hub's answer
    t: logic.accountText('zh-CN'), // the account view's words
  },

  onLoad(query) {
    this.ctx = context();
    this.lang = logic.langOf(wx);
    this.setData({ t: logic.accountText(this.lang) });
    if (query && query.view === 'account') return this.onShowAccount();
    this.sceneId = logic.sceneFromQuery(query);
    return this.scan();
  },

  // The person's account, proven by a fresh wx.login code (no stored token).
  onShowAccount() {
    this.setData({ step: 'loading', error: '' });
    return logic.account(this.ctx).then(
      (account) => this.setData({ step: 'account', account }),
      (err) => this.fail(err),
    );
  },

  // Asks first (wx.showModal); deletes only on the person's "Delete".
  onDeleteAccount() {
    if (this.data.step !== 'account') return Promise.resolve();
    const t = this.data.t;
    return new Promise((resolve) => {
      wx.showModal({
        title: t.confirmTitle,
        content: t.confirmBody,
        confirmText: t.confirmOk,
        cancelText: t.cancel,
        confirmColor: '#e64340',
        success: (res) => resolve(Boolean(res && res.confirm)),
        fail: () => resolve(false),
      });
    }).then((yes) => {
      if (!yes) return undefined;
      this.setData({ step: 'deleting' });
      return logic.deleteAccount(this.ctx).then(
        () => this.setData({ step: 'deleted', account: null }),
        (err) => this.fail(err),
      );
    });
  },

  scan() {
    this.setData({ step: 'loading', error: '' });
    return logic.scan(this.ctx, this.sceneId).then(
      (answer) => {
        this.mpToken = answer.mpToken;
        this.setData({ step: 'ask', site: answer.site, browser: answer.browser });
      },
      (err) => this.fail(err),
    );
  },

  onChooseAvatar(e) {
    this.setData({ avatarUrl: e.detail.avatarUrl });
  },

  // Shown only when the site asks (scan answer's client.wants_phone). The
  // code is sent with the confirm; the hub asks WeChat for the number.
  onPhoneNumber(e) {
    this.phoneCode = logic.phoneCodeFrom(e);
    this.setData({ phoneShared: Boolean(this.phoneCode) });
  },

  onNickname(e) {
    this.setData({ nickname: e.detail.value });
  },

  // chooseAvatar gives a local temporary file: the hub re-encodes and keeps
  // it (POST /api/v1/mp/avatar) and answers the https URL sent in `profile`.
  // An upload that fails does not stop the login: it goes on without avatar.
  uploadAvatar(path) {
    if (!path || logic.isRemoteUrl(path)) return Promise.resolve(path);
    return logic
      .uploadAvatar(this.ctx, { path, mpToken: this.mpToken })
      .catch(() => '');
  },

  onConfirm() {
    if (this.data.step !== 'ask') return undefined;
    this.setData({ step: 'sending' });
    return this.uploadAvatar(this.data.avatarUrl)
      .then((avatarUrl) =>
        logic.confirm(this.ctx, {
          sceneId: this.sceneId,
          mpToken: this.mpToken,
          nickname: this.data.nickname,
          avatarUrl,
          phoneCode: this.phoneCode,
        }),
      )
      .then(
        () => this.setData({ step: 'confirmed' }),
        (err) => this.fail(err),
      );
  },

  onCancel() {
    if (this.data.step !== 'ask') return undefined;
    this.setData({ step: 'sending' });
    return logic.cancel(this.ctx, { sceneId: this.sceneId, mpToken: this.mpToken }).then(
      () => this.setData({ step: 'cancelled' }),
      (err) => this.fail(err),
    );
  },

  onRetry() {
    if (!this.sceneId) return this.onShowAccount();
    return this.mpToken && this.data.site ? this.setData({ step: 'ask', error: '' }) : this.scan();
  },

  onClose() {
    wx.exitMiniProgram ? wx.exitMiniProgram() : wx.navigateBack();
  },

  fail(err) {
    // A network hiccup or a busy WeChat can be retried; a taken, expired or
    // answered code cannot.
    const retryable = ['network', 'wechat_error', 'login_failed', 'rate_limited', 'unavailable', 'failed', 'invalid_request'];
    this.setData({ step: 'error', error: logic.message(err, this.lang), retryable: retryable.includes(err && err.code) });
  },
});
