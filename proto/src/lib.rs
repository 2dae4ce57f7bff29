//! The `payments.v1` wire contract, generated from `payments/v1/*.proto`.
//!
//! `payments::v1` holds the messages and the client and server stubs of
//! `PaymentsService` and `PaymentsAdmin`; [`FILE_DESCRIPTOR_SET`] is the encoded
//! descriptor set that the gRPC reflection service serves, so `grpcurl` works
//! without the .proto files. [`errors`] decodes the `google.rpc.ErrorInfo` (and
//! `RetryInfo`) every error status carries.

pub mod errors;

pub mod payments {
    pub mod v1 {
        #![allow(clippy::all, clippy::pedantic)]
        tonic::include_proto!("payments.v1");
    }
}

/// The encoded `FileDescriptorSet` of every file in `payments/v1`.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("payments_descriptor");
