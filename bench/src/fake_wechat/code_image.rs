//! `POST /wxa/getwxacodeunlimit?access_token=...`: the mini-program code
//! image, checked as WeChat documents it (docs: /work/shared/WECHAT.md) and
//! answered with `image/jpeg` bytes.
//!
//! The image is not a real picture: a JPEG start marker, `FAKEJPEG:`, the
//! scene, filler up to the configured size and an end marker, so each
//! scene's image differs and its size is what the hub stores and serves.
//! The size of WeChat's real 430-pixel codes was not measured here: the
//! default is an assumption, set by `--code-image-bytes`.

use serde_json::Value;

/// Default size of an image, in bytes (an assumption, see above).
pub const DEFAULT_IMAGE_BYTES: usize = 30 * 1024;
/// Largest size `--code-image-bytes` may ask for.
pub const MAX_IMAGE_BYTES: usize = 1024 * 1024;

/// Characters WeChat allows in `scene`.
const SCENE_EXTRA: &str = "!#$&'()*+,/:;=?@-._~";

/// A WeChat error: `errcode` and `errmsg`.
pub type WxError = (i64, &'static str);

/// The image for `scene`, `size` bytes long (or just long enough for its
/// markers and the scene).
pub fn image(scene: &str, size: usize) -> Vec<u8> {
    const HEAD: [u8; 4] = [0xFF, 0xD8, 0xFF, 0xE0];
    const TAG: &[u8] = b"FAKEJPEG:";
    const END: [u8; 2] = [0xFF, 0xD9];
    let mut bytes = Vec::with_capacity(size.max(64));
    bytes.extend_from_slice(&HEAD);
    bytes.extend_from_slice(TAG);
    bytes.extend_from_slice(scene.as_bytes());
    let body = size.saturating_sub(bytes.len() + END.len());
    // Filler that is not all one byte (neither 0xFF nor a marker).
    bytes.extend((0..body).map(|i| (i % 251) as u8 & 0x7F));
    bytes.extend_from_slice(&END);
    bytes
}

/// Checks a request's JSON body as WeChat does: `scene` of 1..=32 allowed
/// characters (40169, 40129), `page` without a leading `/` or a query
/// (41030), `env_version` one of WeChat's (40097), `width` 280..=1280.
/// Returns the scene.
pub fn check(body: &[u8]) -> Result<String, WxError> {
    const BAD_SCENE: WxError = (
        40169,
        "invalid length for scene, or the data is not json string",
    );
    let v: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or(BAD_SCENE)?;
    let scene = v["scene"].as_str().unwrap_or("");
    if scene.is_empty() || scene.len() > 32 {
        return Err(BAD_SCENE);
    }
    if !scene
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || SCENE_EXTRA.contains(c))
    {
        return Err((40129, "invalid scene"));
    }
    if v["page"]
        .as_str()
        .is_some_and(|p| p.starts_with('/') || p.contains('?'))
    {
        return Err((41030, "invalid page rid"));
    }
    if v["env_version"]
        .as_str()
        .is_some_and(|e| !matches!(e, "release" | "trial" | "develop"))
    {
        return Err((40097, "invalid args"));
    }
    if v["width"]
        .as_u64()
        .is_some_and(|w| !(280..=1280).contains(&w))
    {
        return Err((40097, "invalid args"));
    }
    Ok(scene.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_have_the_size_and_markers() {
        let a = image("0123456789abcdef0123456789abcdef", DEFAULT_IMAGE_BYTES);
        assert_eq!(a.len(), DEFAULT_IMAGE_BYTES);
        assert_eq!(&a[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
        assert_eq!(&a[a.len() - 2..], &[0xFF, 0xD9]);
        assert_ne!(
            a,
            image("ffffffffffffffffffffffffffffffff", DEFAULT_IMAGE_BYTES)
        );
        // Too small a size still gives a whole image.
        let tiny = image("s", 3);
        assert!(tiny.len() > 3 && tiny.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn requests_are_checked_as_wechat_does() {
        let ok = br#"{"scene":"abc123","page":"pages/scanlogin/index","env_version":"release","width":430}"#;
        assert_eq!(check(ok), Ok("abc123".to_owned()));
        for (body, errcode) in [
            (&b"not json"[..], 40169),
            (br#"{"scene":""}"#, 40169),
            (br#"{"scene":"0123456789abcdef0123456789abcdef0"}"#, 40169),
            (br#"{"scene":"a%20b"}"#, 40129),
            (br#"{"scene":"a","page":"/pages/x"}"#, 41030),
            (br#"{"scene":"a","page":"pages/x?y=1"}"#, 41030),
            (br#"{"scene":"a","env_version":"beta"}"#, 40097),
            (br#"{"scene":"a","width":100}"#, 40097),
        ] {
            assert_eq!(
                check(body).map_err(|e| e.0),
                Err(errcode),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
