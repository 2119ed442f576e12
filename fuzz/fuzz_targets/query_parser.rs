//! The query parser on arbitrary bytes: never panics, and what it reports
//! stays inside the message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ngx_stream_dns_service_module::dns::query;

fuzz_target!(|data: &[u8]| {
    if let Some(q) = query::parse(data) {
        assert!(data.len() >= 12);
        if let Some(question) = q.question {
            assert!(question.qname.len() <= 255);
            assert!(12 + question.wire_len() <= data.len());
            assert_eq!(&data[12..12 + question.qname.len()], question.qname);
        }
    }
});
