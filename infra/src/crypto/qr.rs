//! QR codes of enrollment URIs, so an authenticator app can scan them: as a PNG data URI (for
//! `<img src>`) and as a compact standalone SVG (for inline markup that scales crisply).

use std::fmt::Write as _;

use qrcodegen::{QrCode, QrCodeEcc};

/// Modules of white border on each side: the quiet zone the QR specification requires.
pub const BORDER: i32 = 4;

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in the largest QR code.
    #[error("text too long for a QR code ({0} bytes)")]
    TooLong(usize),
    /// Encoding the PNG failed.
    #[error("cannot draw the QR code as PNG: {0}")]
    Png(String),
}

/// Whether `text` fits in the largest QR code at level M, as [`encode`] would make it, without
/// making it (encoding is most of the cost). A text of any character outside QR's numeric and
/// alphanumeric sets (an `otpauth://` URI has lower-case letters) is one byte-mode segment: a
/// 4-bit mode, a 16-bit length at version 40, and 8 bits per byte, within version 40-M's 2,334
/// data codewords (2,331 bytes of text). Other texts are asked of the encoder.
pub fn fits(text: &str) -> bool {
    const VERSION_40_M_DATA_BITS: usize = 2_334 * 8;
    if text.bytes().any(|b| b.is_ascii_lowercase()) {
        return 4 + 16 + 8 * text.len() <= VERSION_40_M_DATA_BITS;
    }
    encode(text).is_ok()
}

/// The QR code of `text` (error correction level M, as authenticator enrollment QR codes use),
/// to draw with [`svg_of`] and [`png_data_uri`] so both show the same code.
pub fn encode(text: &str) -> Result<QrCode, QrError> {
    QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| QrError::TooLong(text.len()))
}

/// The QR code of `text` as a standalone SVG document (see [`svg_of`]).
pub fn svg(text: &str) -> Result<String, QrError> {
    encode(text).map(|code| svg_of(&code))
}

/// `code` as a standalone SVG document: one unit per module, a [`BORDER`]-module quiet zone, a
/// white background and a single black `<path>` made of one `h`-run per horizontal stretch of
/// dark modules. `shape-rendering="crispEdges"` keeps module edges sharp at any scale.
pub fn svg_of(code: &QrCode) -> String {
    let size = code.size();
    let full = size + 2 * BORDER;
    let mut path = String::new();
    for y in 0..size {
        let mut x = 0;
        while x < size {
            if !code.get_module(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < size && code.get_module(x, y) {
                x += 1;
            }
            let run = x - start;
            if !path.is_empty() {
                path.push(' ');
            }
            // Writing to a String cannot fail.
            let _ = write!(path, "M{},{}h{run}v1h-{run}z", start + BORDER, y + BORDER);
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {full} {full}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{full}\" height=\"{full}\" fill=\"#FFFFFF\"/>\
         <path d=\"{path}\" fill=\"#000000\"/></svg>"
    )
}

/// `code` as a PNG (8 pixels per module, 4-module quiet zone) in a `data:image/png;base64,`
/// URI, ready for an `<img src>`.
pub fn png_data_uri(code: &QrCode) -> Result<String, QrError> {
    use base64::Engine as _;
    use qrcodegen_image::image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};

    let canvas = qrcodegen_image::draw_canvas(code.clone());
    let (width, height) = canvas.dimensions();
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(canvas.as_raw(), width, height, ExtendedColorType::L8)
        .map_err(|e| QrError::Png(e.to_string()))?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/Acme:alice%40example.com?secret=UWS2LJNFUWS2LJNFUWS2LJNFUWS2LJNF&issuer=Acme&algorithm=SHA1&digits=6&period=30";

    #[test]
    fn fits_agrees_with_the_encoder_around_the_largest_code() {
        for len in (2_300..2_360).chain([1, 100, 2_000, 3_000]) {
            for text in [
                "a".repeat(len),
                format!("otpauth://totp/{}", "%40b".repeat(len / 3)),
                "A".repeat(len),
                "7".repeat(len),
            ] {
                assert_eq!(fits(&text), encode(&text).is_ok(), "{} bytes", text.len());
            }
        }
        assert!(fits(URI));
    }

    /// Reads the dark modules back out of an SVG written by [`svg_of`]: the `M x,y h n v1 h-n z`
    /// runs of its path, in viewBox units.
    fn modules_of_svg(svg: &str) -> (i32, Vec<(i32, i32)>) {
        let view_box = svg.split("viewBox=\"0 0 ").nth(1).unwrap();
        let full: i32 = view_box.split(' ').next().unwrap().parse().unwrap();
        let d = svg
            .split("<path d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut dark = Vec::new();
        for run in d.split(' ') {
            let rest = run.strip_prefix('M').unwrap();
            let (xy, rest) = rest.split_once('h').unwrap();
            let (x, y) = xy.split_once(',').unwrap();
            let (len, tail) = rest.split_once("v1h-").unwrap();
            assert_eq!(tail, format!("{len}z"));
            let (x, y, len): (i32, i32, i32) =
                (x.parse().unwrap(), y.parse().unwrap(), len.parse().unwrap());
            assert!(len > 0 && x >= BORDER && y >= BORDER && x + len <= full - BORDER);
            dark.extend((x..x + len).map(|x| (x, y)));
        }
        (full, dark)
    }

    /// Rasterises the SVG's modules (4 pixels each) and decodes the image with `rqrr`.
    fn decode_svg(svg: &str) -> String {
        const SCALE: u32 = 4;
        let (full, dark) = modules_of_svg(svg);
        let side = full as u32 * SCALE;
        let mut img = image::GrayImage::from_pixel(side, side, image::Luma([255]));
        for (x, y) in dark {
            for dy in 0..SCALE {
                for dx in 0..SCALE {
                    img.put_pixel(
                        x as u32 * SCALE + dx,
                        y as u32 * SCALE + dy,
                        image::Luma([0]),
                    );
                }
            }
        }
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn svg_is_a_standalone_document_with_a_quiet_zone() {
        let code = encode(URI).unwrap();
        let svg = svg(URI).unwrap();
        assert_eq!(svg, svg_of(&code));
        let full = code.size() + 8;
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains(&format!("viewBox=\"0 0 {full} {full}\"")));
        assert!(svg.contains("shape-rendering=\"crispEdges\""));
        assert!(svg.contains("fill=\"#FFFFFF\""));
        assert_eq!(svg.matches("<path").count(), 1);
        // Exactly the dark modules, each once.
        let (_, dark) = modules_of_svg(&svg);
        let expected: usize = (0..code.size())
            .flat_map(|y| (0..code.size()).map(move |x| (x, y)))
            .filter(|&(x, y)| code.get_module(x, y))
            .count();
        assert_eq!(dark.len(), expected);
        for (x, y) in dark {
            assert!(code.get_module(x - BORDER, y - BORDER));
        }
    }

    #[test]
    fn svg_decodes_to_the_text() {
        assert_eq!(decode_svg(&svg(URI).unwrap()), URI);
        let short = "otpauth://totp/A:b?secret=AAAA";
        assert_eq!(decode_svg(&svg(short).unwrap()), short);
    }

    #[test]
    fn png_decodes_to_the_text() {
        use base64::Engine as _;
        let uri = png_data_uri(&encode(URI).unwrap()).unwrap();
        let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        let mut prepared = rqrr::PreparedImage::prepare(img);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        assert_eq!(grids[0].decode().unwrap().1, URI);
    }

    #[test]
    fn oversized_text_is_refused() {
        let err = svg(&"x".repeat(8000)).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
    }
}
