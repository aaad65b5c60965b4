mod common;

use reqwest::{Method, StatusCode};

#[tokio::test]
async fn a_user_can_be_created_and_read_back_by_upn() {
    let env = common::start().await;
    let created = env.create_user("smoke1", Some("US")).await;
    let got = env
        .graph(Method::GET, "/users/smoke1@vendors.abc.example", None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["id"], created["id"]);
}
