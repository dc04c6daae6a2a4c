//! An HTTP/1.1 response as the adapter's kept-alive client reads it from an exporter: no
//! input panics or hangs, and no body passes the cap.
#![no_main]

use kubemind::page_fetch::read_response;
use libfuzzer_sys::fuzz_target;

const MAX_BYTES: usize = 4096;

fuzz_target!(|answer: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut reader = answer;
    if let Ok(response) = runtime.block_on(read_response(&mut reader, MAX_BYTES)) {
        assert!(response.fetched.body.len() <= MAX_BYTES);
    }
});
