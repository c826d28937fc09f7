//! One HTTP request body through the server's decoding path: the front door's
//! JSON-RPC checks, then rmcp's `ClientJsonRpcMessage`. Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    plexus_server::fuzzing::decode(data);
});
