//! Blob downloads over HTTP: length, ETag, single ranges (206), unsatisfiable
//! ranges (416), `If-Range` and `If-None-Match`, on a stored model file.

use kiln::blobs::sha256_hex;
use serde_json::Value;

use crate::helpers::{TestApp, mlp, spawn_app};

/// A model created from an architecture: its download path, bytes and sha256.
async fn stored_model(app: &TestApp) -> (String, Vec<u8>, String) {
    let model = app.create_model(mlp(6, 8, 1, "sigmoid")).await;
    let path = format!("/v1/models/{}/download", model["id"].as_str().expect("id"));
    let sha = model["sha256"].as_str().expect("sha256").to_string();
    let res = app.get(&path).await;
    assert_eq!(res.status(), 200);
    let bytes = res.bytes().await.expect("bytes").to_vec();
    assert_eq!(sha256_hex(&bytes), sha);
    (path, bytes, sha)
}

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("sent")
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("text")
        .to_string()
}

#[tokio::test]
async fn a_full_download_has_length_etag_and_accepts_ranges() {
    let app = spawn_app().await;
    let (path, bytes, sha) = stored_model(&app).await;
    let res = app.get(&path).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-length"), bytes.len().to_string());
    assert_eq!(header(&res, "accept-ranges"), "bytes");
    assert_eq!(header(&res, "etag"), format!("\"{sha}\""));
    assert_eq!(header(&res, "content-type"), "application/octet-stream");
    assert!(header(&res, "content-disposition").contains(".safetensors"));

    let head = app.client.head(app.url(&path)).send().await.expect("sent");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), bytes.len().to_string());
}

#[tokio::test]
async fn single_ranges_answer_206_with_content_range() {
    let app = spawn_app().await;
    let (path, bytes, sha) = stored_model(&app).await;
    let n = bytes.len();
    for (range, from, to) in [
        ("bytes=0-7", 0, 7),
        ("bytes=10-19", 10, 19),
        (&format!("bytes={}-", n - 3) as &str, n - 3, n - 1),
        ("bytes=-5", n - 5, n - 1),
        (&format!("bytes=5-{}", n + 1000), 5, n - 1),
    ] {
        let res = get_with(&app, &path, &[("range", range)]).await;
        assert_eq!(res.status(), 206, "{range}");
        assert_eq!(
            header(&res, "content-range"),
            format!("bytes {from}-{to}/{n}"),
            "{range}"
        );
        assert_eq!(header(&res, "content-length"), (to - from + 1).to_string());
        assert_eq!(header(&res, "etag"), format!("\"{sha}\""));
        assert_eq!(
            res.bytes().await.expect("bytes").as_ref(),
            &bytes[from..=to],
            "{range}"
        );
    }
}

#[tokio::test]
async fn a_range_past_the_end_answers_416_with_the_size() {
    let app = spawn_app().await;
    let (path, bytes, _) = stored_model(&app).await;
    let n = bytes.len();
    for range in [
        format!("bytes={n}-"),
        format!("bytes={}-{}", n + 10, n + 20),
    ] {
        let res = get_with(&app, &path, &[("range", &range)]).await;
        assert_eq!(res.status(), 416, "{range}");
        assert_eq!(header(&res, "content-range"), format!("bytes */{n}"));
        assert_eq!(header(&res, "content-type"), "application/problem+json");
        let problem: Value = res.json().await.expect("json");
        assert_eq!(problem["status"], 416);
    }
}

#[tokio::test]
async fn several_or_unreadable_ranges_get_the_whole_file() {
    let app = spawn_app().await;
    let (path, bytes, _) = stored_model(&app).await;
    for range in ["bytes=0-1,4-5", "bytes=9-3", "lines=0-5"] {
        let res = get_with(&app, &path, &[("range", range)]).await;
        assert_eq!(res.status(), 200, "{range}");
        assert_eq!(res.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
    }
}

#[tokio::test]
async fn if_range_honours_the_range_only_while_the_etag_matches() {
    let app = spawn_app().await;
    let (path, bytes, sha) = stored_model(&app).await;
    let etag = format!("\"{sha}\"");
    let res = get_with(&app, &path, &[("range", "bytes=0-3"), ("if-range", &etag)]).await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), &bytes[..4]);

    let res = get_with(
        &app,
        &path,
        &[("range", "bytes=0-3"), ("if-range", "\"another-version\"")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-length"), bytes.len().to_string());
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn if_none_match_with_the_etag_answers_304() {
    let app = spawn_app().await;
    let (path, _, sha) = stored_model(&app).await;
    let etag = format!("\"{sha}\"");
    let res = get_with(&app, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(res.status(), 304);
    assert_eq!(header(&res, "etag"), etag);
    let res = get_with(&app, &path, &[("if-none-match", "\"other\"")]).await;
    assert_eq!(res.status(), 200);
}
