//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766): every message is
//! preceded by its length as two octets.

/// Longest query accepted over TCP. A query is a few hundred octets; a
/// longer message is not a query this server can answer.
pub const MAX_TCP_QUERY: usize = 4096;

/// What the start of a TCP input buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet.
    Incomplete,
    /// A whole message at `2..2 + len`; the next frame starts at `2 + len`.
    Message { len: usize },
    /// A length of zero or above `MAX_TCP_QUERY`: the stream cannot be
    /// served further.
    Invalid { len: usize },
}

/// Looks at the frame at the start of `input`.
pub fn next_frame(input: &[u8]) -> Frame {
    let [high, low, ..] = *input else {
        return Frame::Incomplete;
    };
    let len = usize::from(u16::from_be_bytes([high, low]));
    if len == 0 || len > MAX_TCP_QUERY {
        return Frame::Invalid { len };
    }
    if input.len() < 2 + len {
        return Frame::Incomplete;
    }
    Frame::Message { len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(next_frame(&[]), Frame::Incomplete);
        assert_eq!(next_frame(&[0]), Frame::Incomplete);
        assert_eq!(next_frame(&[0, 3, 1, 2]), Frame::Incomplete);
        assert_eq!(next_frame(&[0, 3, 1, 2, 3, 9]), Frame::Message { len: 3 });
        assert_eq!(next_frame(&[0, 0, 1]), Frame::Invalid { len: 0 });
        assert_eq!(next_frame(&[0x10, 0x01]), Frame::Invalid { len: 4097 });
        assert_eq!(next_frame(&[0x10, 0x00]), Frame::Incomplete);
    }

    /// Splitting a stream of frames at any point and feeding the pieces in
    /// order yields the same messages as feeding it whole.
    #[test]
    fn any_split_gives_the_same_messages() {
        let mut stream = Vec::new();
        for len in [1usize, 12, 300, 4096, 2] {
            stream.extend((len as u16).to_be_bytes());
            stream.extend(std::iter::repeat(len as u8).take(len));
        }
        let whole = drain(&stream);
        for cut in 0..stream.len() {
            let mut buffer = stream[..cut].to_vec();
            let mut got = drain_in_place(&mut buffer);
            buffer.extend_from_slice(&stream[cut..]);
            got.extend(drain_in_place(&mut buffer));
            assert_eq!(got, whole, "cut at {cut}");
        }
    }

    fn drain(stream: &[u8]) -> Vec<Vec<u8>> {
        drain_in_place(&mut stream.to_vec())
    }

    fn drain_in_place(buffer: &mut Vec<u8>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Frame::Message { len } = next_frame(buffer) {
            out.push(buffer[2..2 + len].to_vec());
            buffer.drain(..2 + len);
        }
        out
    }
}
