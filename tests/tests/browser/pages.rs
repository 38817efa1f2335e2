//! A tiny in-test web server for pages the harness is checked against.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

/// Serves `html` at `/` under `policy` (as the Content-Security-Policy header, when given) and a
/// one-pixel PNG at `/pixel.png`; returns `http://127.0.0.1:PORT`.
pub async fn serve(html: &'static str, policy: Option<&'static str>) -> String {
    let page = move || async move {
        let mut response =
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
        if let Some(policy) = policy {
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(policy),
            );
        }
        response
    };
    let app = Router::new().route("/", get(page)).route(
        "/pixel.png",
        get(|| async { ([(header::CONTENT_TYPE, "image/png")], pixel()) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let address = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

fn pixel() -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::from_pixel(1, 1, image::Rgb([0, 0, 0]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encoding a pixel");
    png
}

/// A page that passes axe: a language, a title, a landmark, a heading, an image with `alt`.
pub const ACCESSIBLE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Harness check</title></head>
<body><main><h1>Harness check</h1><img src="/pixel.png" alt="A black dot"></main></body></html>"#;

/// The same page with the image's `alt` missing: axe's `image-alt` rule (critical).
pub const IMAGE_WITHOUT_ALT: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Harness check</title></head>
<body><main><h1>Harness check</h1><img src="/pixel.png" id="dot"></main></body></html>"#;
