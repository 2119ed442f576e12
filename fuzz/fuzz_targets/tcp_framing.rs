//! TCP framing on an arbitrary byte stream fed in arbitrary pieces: the
//! messages found do not depend on how the stream was split.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ngx_stream_dns_service_module::dns::framing::{next_frame, Frame};

fn drain(buffer: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) -> bool {
    loop {
        match next_frame(buffer) {
            Frame::Incomplete => return true,
            Frame::Invalid { .. } => return false,
            Frame::Message { len } => {
                out.push(buffer[2..2 + len].to_vec());
                buffer.drain(..2 + len);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) * stream.len() / 256;
    let mut whole = Vec::new();
    let whole_ok = drain(&mut stream.to_vec(), &mut whole);
    let mut split = Vec::new();
    let mut buffer = stream[..cut].to_vec();
    let mut ok = drain(&mut buffer, &mut split);
    if ok {
        buffer.extend_from_slice(&stream[cut..]);
        ok = drain(&mut buffer, &mut split);
    }
    assert_eq!(ok, whole_ok);
    if ok {
        assert_eq!(split, whole);
    }
});
