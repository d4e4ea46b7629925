//! How a function's state sits in its item: its JSON, deflated (zlib).
//!
//! A write unit is 1 KB and every look at a warmed function saves its state,
//! so the item's size is most of the table's bill: the JSON of a function
//! warmed all day is 1.5-2.6 KB (two or three units a save), and the same
//! JSON deflated is about half that, one unit for most functions. The state
//! stays JSON inside, so `forewarm status` prints it and a field added later
//! still reads with its default. Items written as plain JSON text (by an
//! earlier controller, or by hand) are read too.

use std::io::Read;

use flate2::read::ZlibDecoder;
use flate2::{Compress, Compression, FlushCompress, Status};

use crate::decision::FunctionState;

/// The most a stored state may inflate to. A state the controller writes is
/// a few KB; anything far larger is not one of its items, and reading it
/// whole would let one bad item take the tick's memory.
pub(crate) const INFLATED_MAX_BYTES: u64 = 256 * 1024;

/// The state as the item stores it.
pub(crate) fn encode(state: &FunctionState) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(state).map_err(|e| format!("serialize state: {e}"))?;
    // A compressor's tables are a few hundred KB to set up; the simulator
    // saves a million states a run, so each thread keeps one and resets it.
    thread_local! {
        static DEFLATE: std::cell::RefCell<Compress> =
            std::cell::RefCell::new(Compress::new(Compression::default(), true));
    }
    DEFLATE.with_borrow_mut(|z| {
        z.reset();
        let mut out = Vec::with_capacity(json.len() / 2 + 64);
        loop {
            let done = z
                .compress_vec(
                    &json[z.total_in() as usize..],
                    &mut out,
                    FlushCompress::Finish,
                )
                .map_err(|e| format!("deflate state: {e}"))?;
            if done == Status::StreamEnd {
                return Ok(out);
            }
            out.reserve(out.capacity().max(256));
        }
    })
}

/// Reads a state stored deflated, or says why it cannot be used.
pub(crate) fn decode(bytes: &[u8]) -> Result<FunctionState, String> {
    let mut json = String::new();
    ZlibDecoder::new(bytes)
        .take(INFLATED_MAX_BYTES + 1)
        .read_to_string(&mut json)
        .map_err(|e| format!("stored state does not inflate ({e}): started afresh"))?;
    if json.len() as u64 > INFLATED_MAX_BYTES {
        return Err(format!(
            "stored state inflates beyond {INFLATED_MAX_BYTES} bytes: started afresh"
        ));
    }
    FunctionState::from_stored(&json)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::ZlibEncoder;

    use super::*;
    use crate::decision::policy::Policy;

    #[test]
    fn a_state_comes_back_as_it_went_in_and_smaller() {
        let mut st = FunctionState::new(&Policy::default());
        st.last_error = Some("x".repeat(40));
        st.decisions = (0..3)
            .map(|i| (i * 300_000, crate::decision::Reason::Due, 1.5, 2, 2).into())
            .collect();
        let json = serde_json::to_string(&st).unwrap();
        let bytes = encode(&st).unwrap();
        assert!(
            bytes.len() < json.len(),
            "{} !< {}",
            bytes.len(),
            json.len()
        );
        let back = decode(&bytes).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn bytes_that_are_not_a_deflated_state_are_refused_with_the_reason() {
        assert!(
            decode(b"{\"schema\":3}")
                .unwrap_err()
                .contains("does not inflate")
        );
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(b"{not json").unwrap();
        assert!(
            decode(&z.finish().unwrap())
                .unwrap_err()
                .contains("unreadable")
        );
        // A small item that inflates to far more than any state.
        let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
        z.write_all(&vec![b' '; 4 << 20]).unwrap();
        let bomb = z.finish().unwrap();
        assert!(bomb.len() < 8 * 1024);
        assert!(decode(&bomb).unwrap_err().contains("inflates beyond"));
    }
}
