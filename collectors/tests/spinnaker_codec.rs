//! SCP encoding and BMP reply decoding against byte strings built by hand from the reference tables.

use collectors::spinnaker::scp::{Args, Command, Dest, ScpReply, ScpRequest};
use collectors::spinnaker::{BoardStatus, SensorKind, ShortAdc};

fn adc_block() -> Vec<u8> {
    let mut b = Vec::new();
    // adc[0..8]: [1] 1.2 V C, [2] 1.2 V B, [3] 1.2 V A, [4] 1.8 V, [6] 3.3 V, [7] 12 V; [0], [5] unused.
    for raw in [0xFFFFu16, 1966, 1967, 1968, 2949, 0xFFFF, 3604, 3277] {
        b.extend_from_slice(&raw.to_le_bytes());
    }
    // t_int[0..4]: top, bottom, unused.
    for raw in [0x2480i16, 0x2040, 0x7FFF, 0x7FFF] {
        b.extend_from_slice(&raw.to_le_bytes());
    }
    // t_ext[0..4]: no probe on [0], -3.5 degrees on [1].
    for raw in [-0x8000i16, -0x0380, 0, 0] {
        b.extend_from_slice(&raw.to_le_bytes());
    }
    // fan[0..4]: 3000 RPM, no fan.
    for raw in [3000i16, -1, 1234, 1234] {
        b.extend_from_slice(&raw.to_le_bytes());
    }
    b.extend_from_slice(&0x0000_0005u32.to_le_bytes());
    b.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    assert_eq!(b.len(), 48);
    b
}

#[test]
fn adc_reply_decodes_per_the_reference_table() {
    let s = BoardStatus::decode(&adc_block()).unwrap();
    assert_eq!(s.temp_top, 36.5);
    assert_eq!(s.temp_bottom, 32.25);
    assert_eq!(s.temp_ext0, None);
    assert_eq!(s.temp_ext1, Some(-3.5));
    assert_eq!(s.v1v2a, 1968.0 * 2.5 / 4096.0);
    assert_eq!(s.v1v2b, 1967.0 * 2.5 / 4096.0);
    assert_eq!(s.v1v2c, 1966.0 * 2.5 / 4096.0);
    assert_eq!(s.v1v8, 2949.0 * 2.5 / 4096.0);
    assert_eq!(s.v3v3, 3604.0 * 3.75 / 4096.0);
    assert_eq!(s.supply, 3277.0 * 15.0 / 4096.0);
    assert_eq!(s.fan0, Some(3000));
    assert_eq!(s.fan1, None);
    assert_eq!(s.warning, 5);
    assert_eq!(s.shutdown, 0x8000_0000);
}

#[test]
fn sensors_use_the_design_names_and_leave_absent_ones_out() {
    let s = BoardStatus::decode(&adc_block()).unwrap();
    let got: Vec<(SensorKind, &str, f64)> = s.sensors().iter().map(|r| (r.kind, r.name, r.value)).collect();
    use SensorKind::*;
    assert_eq!(
        got,
        [
            (Temperature, "top", 36.5),
            (Temperature, "bottom", 32.25),
            (Temperature, "ext1", -3.5),
            (Voltage, "1v2a", 1968.0 * 2.5 / 4096.0),
            (Voltage, "1v2b", 1967.0 * 2.5 / 4096.0),
            (Voltage, "1v2c", 1966.0 * 2.5 / 4096.0),
            (Voltage, "1v8", 2949.0 * 2.5 / 4096.0),
            (Voltage, "3v3", 3604.0 * 3.75 / 4096.0),
            (Voltage, "supply", 3277.0 * 15.0 / 4096.0),
            (Fan, "fan0", 3000.0),
        ]
    );
}

#[test]
fn short_adc_is_an_error_and_extra_bytes_are_ignored() {
    let block = adc_block();
    assert_eq!(BoardStatus::decode(&block[..47]), Err(ShortAdc { len: 47 }));
    let mut longer = block.clone();
    longer.extend_from_slice(&[1, 2, 3]);
    assert_eq!(BoardStatus::decode(&longer), BoardStatus::decode(&block));
}

#[test]
fn ver_request_is_the_exact_bytes() {
    let req = ScpRequest::new(Dest::bmp(3), Command::VER, Args::None);
    assert_eq!(
        req.encode(0x1234),
        [
            0x00, 0x00, // padding
            0x87, // flags: reply expected
            0xFF, // tag
            0x03, // dest: port 0, cpu 3 = board 3
            0xFF, // src: port 7, cpu 31
            0x00, 0x00, 0x00, 0x00, // dest_y, dest_x, src_y, src_x
            0x00, 0x00, // cmd VER
            0x34, 0x12, // seq
        ]
    );
}

#[test]
fn adc_and_power_requests_carry_their_args() {
    let adc = ScpRequest::new(Dest::bmp(23), Command::BMP_INFO, Args::One(3));
    assert_eq!(adc.encode(0xFFFF), [0, 0, 0x87, 0xFF, 23, 0xFF, 0, 0, 0, 0, 48, 0, 0xFF, 0xFF, 3, 0, 0, 0]);
    let power = ScpRequest::new(Dest::bmp(0), Command::BMP_POWER, Args::Two((100 << 16) | 1, 1 << 5));
    assert_eq!(power.encode(0), [0, 0, 0x87, 0xFF, 0, 0xFF, 0, 0, 0, 0, 57, 0, 0, 0, 1, 0, 100, 0, 0x20, 0, 0, 0]);
}

#[test]
fn replies_decode_return_code_and_seq() {
    let reply = ScpReply::decode(&[0, 0, 7, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0x86, 0, 0xFF, 0xFF]).unwrap();
    assert_eq!(reply.rc.0, 0x86);
    assert!(reply.rc.is_retryable());
    assert_eq!(reply.seq, 0xFFFF);
    assert!(reply.payload.is_empty());
}
