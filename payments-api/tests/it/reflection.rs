//! gRPC reflection in both versions clients speak: v1 (grpcurl) and v1alpha (Postman,
//! Evans, older grpcurl), on the admin port. Each lists every service of the contract
//! and serves the file that defines `PaymentsService`, which is what those tools need
//! to build a call. The public port serves neither reflection nor `PaymentsAdmin`.

use prost::Message as _;
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

use crate::helpers::TestApp;

const EXPECTED: [&str; 5] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "payments.v1.PaymentsAdmin",
    "payments.v1.PaymentsService",
];

/// The file names in an answer to `file_containing_symbol`.
fn file_names(encoded: &[Vec<u8>]) -> Vec<String> {
    encoded
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .expect("a FileDescriptorProto")
                .name()
                .to_owned()
        })
        .collect()
}

/// The same conversation in either version: the generated types differ only in
/// their package, so one macro writes the test for each.
macro_rules! lists_and_describes {
    ($test:ident, $version:ident) => {
        #[tokio::test]
        async fn $test() {
            use $version::{
                server_reflection_client::ServerReflectionClient,
                server_reflection_request::MessageRequest,
                server_reflection_response::MessageResponse,
            };
            let app = TestApp::start().await;
            let channel = Channel::from_shared(format!("http://{}", app.admin_addr))
                .expect("an address")
                .connect()
                .await
                .expect("connect");
            let mut client = ServerReflectionClient::new(channel);
            let ask = |request: MessageRequest| $version::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            };
            let requests = [
                ask(MessageRequest::ListServices(String::new())),
                ask(MessageRequest::FileContainingSymbol(
                    "payments.v1.PaymentsService".into(),
                )),
            ];
            let mut answers = client
                .server_reflection_info(tokio_stream::iter(requests))
                .await
                .expect("reflection stream")
                .into_inner();

            let listed = answers.message().await.expect("answer").expect("a message");
            let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
                panic!("expected the service list, got {listed:?}");
            };
            let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            assert_eq!(names, EXPECTED);

            let described = answers.message().await.expect("answer").expect("a message");
            let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response
            else {
                panic!("expected file descriptors, got {described:?}");
            };
            let files = file_names(&files.file_descriptor_proto);
            assert!(
                files.contains(&"payments/v1/payments.proto".into()),
                "{files:?}"
            );

            app.stop().await;
        }
    };
}

lists_and_describes!(reflection_v1_lists_the_services_and_describes_them, v1);
lists_and_describes!(
    reflection_v1alpha_lists_the_services_and_describes_them,
    v1alpha
);

#[tokio::test]
async fn the_public_port_serves_only_payments_service_and_the_admin_port_the_rest() {
    use payments_proto::payments::v1::{
        self as pb, payments_admin_client::PaymentsAdminClient,
        payments_service_client::PaymentsServiceClient,
    };
    use tonic::Code;
    use v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    };

    use crate::helpers::{as_user, service_token, with_token};

    let app = TestApp::start().await;
    let public = format!("http://{}", app.addr);
    let admin = format!("http://{}", app.admin_addr);
    let mut on_public = PaymentsAdminClient::connect(public.clone())
        .await
        .expect("connect");
    let refused = on_public
        .check_ledger(with_token(&service_token(), pb::CheckLedgerRequest {}))
        .await
        .expect_err("no admin on the public port");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");
    let channel = Channel::from_shared(public.clone())
        .expect("an address")
        .connect()
        .await
        .expect("connect");
    let mut reflection = ServerReflectionClient::new(channel);
    let list = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let refused = match reflection
        .server_reflection_info(tokio_stream::iter([list]))
        .await
    {
        Err(status) => status,
        Ok(answers) => answers
            .into_inner()
            .message()
            .await
            .expect_err("no reflection on the public port"),
    };
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    let mut on_admin = PaymentsAdminClient::connect(admin.clone())
        .await
        .expect("connect");
    on_admin
        .check_ledger(with_token(&service_token(), pb::CheckLedgerRequest {}))
        .await
        .expect("admin on the admin port");
    let mut users_on_admin = PaymentsServiceClient::connect(admin)
        .await
        .expect("connect");
    let wallet = pb::GetWalletRequest {
        user_id: "alice".into(),
    };
    let refused = users_on_admin
        .get_wallet(as_user("alice", wallet))
        .await
        .expect_err("PaymentsService is on the public port only");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");
    app.stop().await;
}
