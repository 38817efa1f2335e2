//! The fakes' own helpers: reading a code the way a user does.

use base64::Engine;
use twofold_tests::fakes::{extract_code, ReceivedMail};

#[test]
fn codes_are_found_standalone_only() {
    assert_eq!(
        extract_code("Acme code: 123456. Valid", 6).as_deref(),
        Some("123456")
    );
    assert_eq!(
        extract_code("id a123456 or 1234567 then 654321", 6).as_deref(),
        Some("654321")
    );
    assert_eq!(extract_code("nothing 12345 here", 6), None);
    assert_eq!(
        extract_code("<b>12345678</b>", 8).as_deref(),
        Some("12345678")
    );
}

#[test]
fn codes_are_found_in_encoded_mail_bodies_not_headers() {
    let qp = "Message-ID: <111111@x>\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Transfer-Encoding: quoted-printable\r\n\r\n\
              =E1=83=97 code 12=\r\n3456 ok\r\n";
    assert_eq!(extract_code(qp, 6).as_deref(), Some("123456"));
    let b64 = format!(
        "Date: 1 Jan 222222\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        base64::engine::general_purpose::STANDARD.encode("your code is 987654.")
    );
    assert_eq!(extract_code(&b64, 6).as_deref(), Some("987654"));
    let multipart = "Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
                     --b1\r\nContent-Type: text/html\r\n\r\n<p>222222</p>\r\n\
                     --b1\r\nContent-Type: text/plain\r\n\r\ncode 333333\r\n--b1--\r\n";
    assert_eq!(
        extract_code(multipart, 6).as_deref(),
        Some("333333"),
        "plain first"
    );
    let mail = ReceivedMail {
        from: String::new(),
        to: Vec::new(),
        data: multipart.to_owned(),
        helo: String::new(),
    };
    assert_eq!(mail.html().as_deref(), Some("<p>222222</p>\r\n"));
    assert_eq!(
        mail.header("content-type").as_deref(),
        Some("multipart/alternative; boundary=\"b1\"")
    );
}
