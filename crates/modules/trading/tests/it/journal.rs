//! Tests of `plexus_trading::journal`: append and reopen, group commit, a
//! torn tail, corrupted records, and replay reaching exactly the live
//! venue's state and events.

// Tests may unwrap (the workspace warns on it for library code).
#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions as FsOpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use plexus_trading::engine::{Cancel, Command, Discard, Event, NewOrder, RejectReason, Venue};
use plexus_trading::journal::{
    self, DecodeError, Journal, JournalError, JournaledVenue, MAX_PAYLOAD, OpenOptions, Opened, Sync,
};
use plexus_trading::types::{Instrument, Side};
use proptest::prelude::*;

use crate::engine::model::{self, Op};

/// A journal path in the temp dir, removed on drop.
struct TempJournal(PathBuf);

impl TempJournal {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("plexus-trading-{name}-{}-{n}.journal", std::process::id()));
        let _ = fs::remove_file(&path);
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn len(&self) -> u64 {
        fs::metadata(&self.0).unwrap().len()
    }
}

impl Drop for TempJournal {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn aapl() -> Instrument {
    Instrument { symbol: "AAPL".into(), price_decimals: 2, qty_decimals: 0, tick: 1, lot: 1 }
}

/// An instrument and `n` resting orders (alternating sides, not crossing).
fn script(n: u64) -> Vec<Command> {
    let mut cmds = vec![Command::AddInstrument(aapl())];
    for id in 1..=n {
        let (side, price) =
            if id % 2 == 0 { (Side::Buy, 100 - (id % 7) as i64) } else { (Side::Sell, 110 + (id % 5) as i64) };
        cmds.push(NewOrder::limit(id, 0, side, price, 10 + id).by(1, 1).into());
    }
    cmds
}

fn venue_of(cmds: &[Command]) -> Venue {
    let mut v = Venue::new();
    for c in cmds {
        v.apply(c, &mut Discard).unwrap();
    }
    v
}

fn commands(opened: &Opened) -> Vec<Command> {
    opened.records.iter().map(|r| r.command.clone()).collect()
}

/// Record boundaries (byte offsets of each record's start, and the end).
fn boundaries(path: &Path) -> Vec<u64> {
    let bytes = fs::read(path).unwrap();
    let mut at = 16usize;
    let mut out = vec![at as u64];
    while at + 24 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += 24 + len;
        out.push(at as u64);
    }
    out
}

#[test]
fn appended_commands_come_back_in_order_with_sequence_numbers() {
    let tmp = TempJournal::new("append");
    let cmds = script(20);
    {
        let (mut j, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
        assert!(opened.created);
        assert!(opened.records.is_empty());
        assert_eq!(j.next_seq(), 1);
        for (i, c) in cmds.iter().enumerate() {
            assert_eq!(j.append(c).unwrap(), i as u64 + 1);
        }
        assert_eq!(j.len_bytes(), tmp.len());
        assert_eq!(j.sync_mode(), Sync::Os);
        assert_eq!(j.path(), tmp.path());
    }
    let (mut j, opened) = Journal::open(tmp.path(), Sync::Always).unwrap();
    assert!(!opened.created);
    assert_eq!(opened.truncated_bytes, 0);
    assert_eq!(commands(&opened), cmds);
    let seqs: Vec<_> = opened.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=21).collect::<Vec<_>>());
    assert!(opened.records.iter().all(|r| r.time_ns > 1_600_000_000_000_000_000));
    // Appending goes on from there, with one sync for a batch.
    let more = [Command::Cancel(Cancel { symbol: 0, id: 1 }), Command::Cancel(Cancel { symbol: 0, id: 2 })];
    assert_eq!(j.append_batch(&more).unwrap(), 22..24);
    assert_eq!(j.append_batch(&[]).unwrap(), 24..24);
    drop(j);
    let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
    assert_eq!(opened.records.len(), 23);
    assert_eq!(opened.records[22].command, more[1]);
}

#[test]
fn a_second_writer_is_refused_and_records_can_be_streamed() {
    let tmp = TempJournal::new("lock");
    let (mut j, _) = Journal::open(tmp.path(), Sync::Os).unwrap();
    j.append_batch(&script(5)).unwrap();
    let err = Journal::open(tmp.path(), Sync::Os).unwrap_err();
    assert!(matches!(err, JournalError::Locked { .. }), "{err}");
    assert!(err.to_string().ends_with("is locked by another writer"));
    assert!(matches!(
        JournaledVenue::open(tmp.path(), OpenOptions::new(Sync::Os), &mut Discard),
        Err(JournalError::Locked { .. })
    ));
    drop(j);
    // Streamed: each record handed over as it is read.
    let mut seen = Vec::new();
    let (j, recovery) = Journal::open_each(tmp.path(), OpenOptions::new(Sync::Os), |r| {
        seen.push((r.seq, r.command));
        Ok(())
    })
    .unwrap();
    assert_eq!((recovery.records, recovery.truncated_bytes, recovery.created), (6, 0, false));
    assert_eq!(seen.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(), script(5));
    assert_eq!(seen.last().unwrap().0, 6);
    assert_eq!(j.next_seq(), 7);
    drop(j);
    // A callback error stops opening and leaves the file alone, torn tail included.
    let mut f = FsOpenOptions::new().append(true).open(tmp.path()).unwrap();
    f.write_all(&[1, 2, 3]).unwrap();
    drop(f);
    let len = tmp.len();
    let err = Journal::open_each(tmp.path(), OpenOptions::new(Sync::Os), |r| {
        if r.seq == 3 {
            Err(JournalError::ReplayRejected { seq: 3, reason: RejectReason::UnknownOrder })
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(matches!(err, JournalError::ReplayRejected { seq: 3, .. }));
    assert_eq!(tmp.len(), len);
}

#[test]
fn a_torn_tail_is_cut_and_the_rest_replays() {
    let cmds = script(30);
    let full = venue_of(&cmds);
    let shorter = venue_of(&cmds[..30]);
    // Cut the last record at every kind of place: inside its header, just
    // after it, inside the payload, one byte short.
    for cut in [1u64, 10, 23, 24, 30] {
        let tmp = TempJournal::new("torn");
        let (mut j, _) = Journal::open(tmp.path(), Sync::Os).unwrap();
        for c in &cmds {
            j.append(c).unwrap();
        }
        drop(j);
        let b = boundaries(tmp.path());
        let last_start = b[b.len() - 2];
        let end = b[b.len() - 1];
        let keep = (last_start + cut).min(end - 1);
        fs::OpenOptions::new().write(true).open(tmp.path()).unwrap().set_len(keep).unwrap();

        let mut replayed = Vec::new();
        let (jv, recovery) = JournaledVenue::open(tmp.path(), OpenOptions::new(Sync::Os), &mut replayed).unwrap();
        assert_eq!(recovery.truncated_bytes, keep - last_start, "cut {cut}");
        assert_eq!(recovery.records, 30);
        assert_eq!(tmp.len(), last_start);
        assert_eq!(jv.venue().digest(), shorter.digest());
        assert_eq!(jv.venue().snapshot(), shorter.snapshot());
        // The lost command can be submitted again and takes the next sequence number.
        let (mut venue_journal, mut ev) = (jv, Vec::new());
        assert_eq!(venue_journal.journal().next_seq(), 31);
        venue_journal.submit(&cmds[30], &mut ev).unwrap().unwrap();
        assert_eq!(venue_journal.venue().digest(), full.digest());
        drop(venue_journal);
        let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
        assert_eq!(commands(&opened), cmds);
    }
}

#[test]
fn a_header_cut_while_creating_is_rewritten_and_garbage_is_refused() {
    let tmp = TempJournal::new("header");
    fs::write(tmp.path(), b"PLXJ").unwrap();
    let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
    assert!(opened.created);
    assert_eq!(tmp.len(), 16);
    fs::write(tmp.path(), b"not a journal at all").unwrap();
    assert!(matches!(Journal::open(tmp.path(), Sync::Os), Err(JournalError::NotAJournal { .. })));
    fs::write(tmp.path(), b"nope").unwrap();
    assert!(matches!(Journal::open(tmp.path(), Sync::Os), Err(JournalError::NotAJournal { .. })));
    let mut header = b"PLXJRNL\0".to_vec();
    header.extend_from_slice(&2u32.to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    fs::write(tmp.path(), &header).unwrap();
    let err = Journal::open(tmp.path(), Sync::Os).unwrap_err();
    assert!(matches!(err, JournalError::UnsupportedVersion { version: 2 }));
    assert_eq!(err.to_string(), "journal format version 2 is not supported (this build reads 1)");
}

#[test]
fn a_corrupted_record_followed_by_valid_ones_is_refused_unless_told_to_cut() {
    let tmp = TempJournal::new("crc");
    let cmds = script(10);
    let (mut j, _) = Journal::open(tmp.path(), Sync::Os).unwrap();
    j.append_batch(&cmds).unwrap();
    drop(j);
    let b = boundaries(tmp.path());
    let original = fs::read(tmp.path()).unwrap();
    // Flip one payload bit of record 5 (index 4).
    let mut bytes = original.clone();
    bytes[b[4] as usize + 24 + 3] ^= 0x10;
    fs::write(tmp.path(), &bytes).unwrap();
    let err = Journal::open(tmp.path(), Sync::Os).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { offset, seq: 5 } if offset == b[4]), "{err}");
    assert!(err.to_string().contains("record 5 at byte"));
    // The refusal left the file alone.
    assert_eq!(fs::read(tmp.path()).unwrap(), bytes);
    // A damaged checksum field is caught the same way.
    let mut bytes = original.clone();
    bytes[b[2] as usize + 4] ^= 0xff;
    fs::write(tmp.path(), &bytes).unwrap();
    assert!(matches!(Journal::open(tmp.path(), Sync::Os), Err(JournalError::Corrupt { seq: 3, .. })));
    // Told to cut: records 1 and 2 survive, the rest goes.
    let opts = OpenOptions { sync: Sync::Os, truncate_corrupt: true };
    let (_, opened) = Journal::open_with(tmp.path(), opts).unwrap();
    assert_eq!(commands(&opened), cmds[..2]);
    assert_eq!(opened.truncated_bytes, b[b.len() - 1] - b[2]);
    assert_eq!(tmp.len(), b[2]);
}

#[test]
fn a_corrupted_last_record_is_a_torn_tail() {
    let tmp = TempJournal::new("crc-last");
    let cmds = script(6);
    let (mut j, _) = Journal::open(tmp.path(), Sync::Os).unwrap();
    j.append_batch(&cmds).unwrap();
    drop(j);
    let b = boundaries(tmp.path());
    let mut bytes = fs::read(tmp.path()).unwrap();
    let last = b[b.len() - 2] as usize;
    bytes[last + 30] ^= 1;
    // And zeros after it, as a crash with preallocated blocks leaves.
    bytes.extend_from_slice(&[0; 100]);
    fs::write(tmp.path(), &bytes).unwrap();
    let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
    assert_eq!(commands(&opened), cmds[..6]);
    assert_eq!(opened.truncated_bytes, bytes.len() as u64 - last as u64);
    // Zeros alone at the end: cut too.
    let mut f = FsOpenOptions::new().append(true).open(tmp.path()).unwrap();
    f.write_all(&[0; 7]).unwrap();
    drop(f);
    let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
    assert_eq!((opened.records.len(), opened.truncated_bytes), (6, 7));
}

/// A record with a good checksum whose command is unknown to this build.
fn raw_record(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut head = Vec::new();
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(&[0; 4]);
    head.extend_from_slice(&seq.to_le_bytes());
    head.extend_from_slice(&7u64.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&head[0..4]);
    h.update(&head[8..24]);
    h.update(payload);
    head[4..8].copy_from_slice(&h.finalize().to_le_bytes());
    head.extend_from_slice(payload);
    head
}

#[test]
fn a_valid_record_this_build_cannot_decode_is_an_error_not_a_cut() {
    let tmp = TempJournal::new("tag");
    let (mut j, _) = Journal::open(tmp.path(), Sync::Os).unwrap();
    j.append(&Command::AddInstrument(aapl())).unwrap();
    drop(j);
    let mut f = FsOpenOptions::new().append(true).open(tmp.path()).unwrap();
    f.write_all(&raw_record(2, &[99, 1, 2, 3])).unwrap();
    drop(f);
    let len = tmp.len();
    let err = Journal::open(tmp.path(), Sync::Os).unwrap_err();
    assert!(matches!(err, JournalError::Decode { seq: 2, source: DecodeError::UnknownTag(99), .. }), "{err}");
    assert_eq!(tmp.len(), len);
    // A sequence gap with a good checksum is damage, like a bad checksum.
    let tmp = TempJournal::new("gap");
    let (mut j, _) = Journal::open(tmp.path(), Sync::Os).unwrap();
    j.append(&Command::AddInstrument(aapl())).unwrap();
    drop(j);
    let mut payload = Vec::new();
    payload.push(3u8);
    payload.extend_from_slice(&0u32.to_le_bytes());
    payload.extend_from_slice(&1u64.to_le_bytes());
    let mut f = FsOpenOptions::new().append(true).open(tmp.path()).unwrap();
    f.write_all(&raw_record(5, &payload)).unwrap();
    drop(f);
    let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
    assert_eq!(opened.records.len(), 1);
    assert_eq!(opened.truncated_bytes, 24 + payload.len() as u64);
    // A length beyond the largest payload is damage too (no huge allocation).
    let mut f = FsOpenOptions::new().append(true).open(tmp.path()).unwrap();
    f.write_all(&(MAX_PAYLOAD + 1).to_le_bytes()).unwrap();
    f.write_all(&[0xab; 40]).unwrap();
    drop(f);
    let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
    assert_eq!((opened.records.len(), opened.truncated_bytes), (1, 44));
}

#[test]
fn only_accepted_commands_are_journaled_and_batches_see_their_own_effects() {
    let tmp = TempJournal::new("batch");
    let mut ev = Vec::new();
    let (mut jv, rec) = JournaledVenue::open(tmp.path(), OpenOptions::new(Sync::Always), &mut ev).unwrap();
    assert!(rec.created && rec.records == 0);
    jv.submit(&Command::AddInstrument(aapl()), &mut ev).unwrap().unwrap();
    // Refused: answered, not journaled.
    ev.clear();
    let bad: Command = NewOrder::limit(1, 0, Side::Buy, 0, 10).into();
    assert_eq!(jv.submit(&bad, &mut ev).unwrap(), Err(RejectReason::PriceOutOfRange));
    assert!(matches!(ev[0], Event::Rejected { reason: RejectReason::PriceOutOfRange, .. }));
    assert_eq!(jv.journal().next_seq(), 2);
    // A batch: an order and its cancel in the same batch, and a refusal between.
    ev.clear();
    let batch: Vec<Command> = vec![
        NewOrder::limit(1, 0, Side::Buy, 100, 10).into(),
        Cancel { symbol: 0, id: 7 }.into(),
        Cancel { symbol: 0, id: 1 }.into(),
        NewOrder::limit(2, 0, Side::Sell, 101, 5).into(),
    ];
    assert_eq!(jv.submit_batch(&batch, &mut ev).unwrap(), 3);
    assert_eq!(ev.iter().filter(|e| matches!(e, Event::Rejected { .. })).count(), 1);
    assert_eq!(jv.journal().next_seq(), 5);
    assert!(!jv.is_poisoned());
    let live = jv.venue().snapshot();
    let (venue, _) = jv.into_parts();
    assert_eq!(venue.applied(), 4);
    let (_, opened) = Journal::open(tmp.path(), Sync::Os).unwrap();
    let kept: Vec<Command> = vec![Command::AddInstrument(aapl()), batch[0].clone(), batch[2].clone(), batch[3].clone()];
    assert_eq!(commands(&opened), kept);
    let mut replayed = Venue::new();
    journal::replay(&mut replayed, &opened.records, &mut Discard).unwrap();
    assert_eq!(replayed.snapshot(), live);
}

#[test]
fn replay_that_the_venue_refuses_is_an_error() {
    let tmp = TempJournal::new("refused");
    let (mut j, _) = Journal::open(tmp.path(), Sync::Os).unwrap();
    j.append(&Command::AddInstrument(aapl())).unwrap();
    j.append(&Cancel { symbol: 0, id: 1 }.into()).unwrap();
    drop(j);
    let err = JournaledVenue::open(tmp.path(), OpenOptions::new(Sync::Os), &mut Discard).unwrap_err();
    assert!(matches!(err, JournalError::ReplayRejected { seq: 2, reason: RejectReason::UnknownOrder }), "{err}");
}

/// Feeds generated commands to a journaled venue in chunks (single submits
/// and group-committed batches), reopens, and compares.
fn replay_equals_live(ops: &[Op], chunks: &[usize], sync: Sync) -> Result<(), TestCaseError> {
    let cmds = model::commands(ops);
    let tmp = TempJournal::new("replay");
    let mut live = Vec::new();
    let (mut jv, _) = JournaledVenue::open(tmp.path(), OpenOptions::new(sync), &mut Discard).unwrap();
    let mut rest = &cmds[..];
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks.get(i).copied().unwrap_or(1).clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if n == 1 {
            let _verdict = jv.submit(&chunk[0], &mut live).unwrap();
        } else {
            jv.submit_batch(chunk, &mut live).unwrap();
        }
    }
    let (digest, snapshot) = (jv.venue().digest(), jv.venue().snapshot());
    drop(jv);

    // The same commands straight into a venue, without a journal.
    let mut direct = Venue::new();
    let mut direct_events = Vec::new();
    for c in &cmds {
        let _verdict = direct.apply(c, &mut direct_events);
    }
    prop_assert_eq!(&direct_events, &live);
    prop_assert_eq!(direct.digest(), digest);

    // Reopen and replay: same state, same events (refusals were not journaled).
    let mut replayed = Vec::new();
    let (jv, recovery) = JournaledVenue::open(tmp.path(), OpenOptions::new(Sync::Os), &mut replayed).unwrap();
    prop_assert_eq!(recovery.truncated_bytes, 0);
    prop_assert_eq!(jv.venue().digest(), digest);
    prop_assert_eq!(&jv.venue().snapshot(), &snapshot);
    let accepted: Vec<Event> = live.into_iter().filter(|e| !matches!(e, Event::Rejected { .. })).collect();
    prop_assert_eq!(replayed, accepted);
    prop_assert_eq!(recovery.records, jv.venue().applied());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replay_reaches_the_live_state_and_events(
        ops in proptest::collection::vec(model::op(), 1..200),
        chunks in proptest::collection::vec(1usize..12, 0..40),
    ) {
        replay_equals_live(&ops, &chunks, Sync::Os)?;
    }
}

#[test]
fn replay_equals_live_with_group_commit_and_fdatasync() {
    let ops: Vec<Op> = (0..300u64)
        .map(|i| match i % 5 {
            0..=2 => Op::New {
                sell: i % 2 == 0,
                kind: u8::try_from(i % 10).unwrap(),
                off: i64::try_from(i % 9).unwrap() - 4,
                lots: 1 + i % 5,
                account: u32::try_from(i % 4).unwrap(),
                stp: u8::try_from(i % 4).unwrap(),
            },
            3 => Op::Cancel { pick: usize::try_from(i * 7).unwrap() },
            _ => Op::Replace { pick: usize::try_from(i * 13).unwrap(), off: 0, lots: 2 },
        })
        .collect();
    replay_equals_live(&ops, &[64; 8], Sync::Always).unwrap();
}
