//! The kmsg reader against a regular file of records (the character device needs root; its record
//! semantics are covered by the parser tests and the reader's errno classification).

use std::fs::OpenOptions;
use std::io::Write;

use collectors::logs::{KmsgOptions, KmsgReader, KmsgRecord};

const RECORDS: &str = "\
4,100,1000,-;pcieport 0000:00:1c.0: AER: Corrected error received: 0000:3b:00.0
 SUBSYSTEM=pci
 DEVICE=+pci:0000:3b:00.0
this line is not a record
3,101,2000,-;habanalabs hl0: Device is NOT usable
6,102,3000,-;eth0: link up
";

fn write(path: &std::path::Path, text: &str) {
    OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

fn poll(r: &mut KmsgReader) -> (Vec<KmsgRecord>, collectors::logs::KmsgStats) {
    let mut out = Vec::new();
    let stats = r.poll(&mut out).unwrap();
    (out, stats)
}

#[test]
fn records_with_continuations_are_parsed_and_garbage_counted() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kmsg");
    write(&p, RECORDS);
    let mut r = KmsgReader::open(&p, KmsgOptions { from_beginning: true, ..KmsgOptions::default() }).unwrap();
    let (out, stats) = poll(&mut r);
    let seqs: Vec<u64> = out.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [100, 101, 102]);
    assert_eq!((stats.records, stats.malformed, stats.overwritten), (3, 1, 0));
    assert_eq!(out[0].property("DEVICE"), Some("+pci:0000:3b:00.0"));
    assert_eq!(out[0].priority, 4);
    assert_eq!(out[1].message, "habanalabs hl0: Device is NOT usable");
    assert_eq!(out[1].timestamp_us, 2000);
}

#[test]
fn by_default_only_records_logged_after_opening_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kmsg");
    write(&p, RECORDS);
    let mut r = KmsgReader::open(&p, KmsgOptions::default()).unwrap();
    assert_eq!(poll(&mut r).0, []);
    write(&p, "2,103,4000,-;hl0: device reset\n");
    let (out, stats) = poll(&mut r);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq, out[0].priority, out[0].message.as_str()), (103, 2, "hl0: device reset"));
    assert_eq!(stats.records, 1);
}

#[test]
fn a_record_being_written_waits_for_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kmsg");
    write(&p, "");
    let mut r = KmsgReader::open(&p, KmsgOptions::default()).unwrap();
    write(&p, "6,1,10,-;half a rec");
    assert_eq!(poll(&mut r).1.records, 0);
    write(&p, "ord\n");
    let (out, _) = poll(&mut r);
    assert_eq!(out.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["half a record"]);
}

#[test]
fn a_missing_device_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("kmsg");
    let e = KmsgReader::open(&p, KmsgOptions::default()).unwrap_err();
    assert_eq!(e.path(), p);
    assert!(e.to_string().contains("kmsg: open:"), "{e}");
}
