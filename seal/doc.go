// Package seal encrypts medical readings at rest with envelope encryption
// and erases them by crypto-shredding.
//
// # Envelope
//
// Every reading is encrypted with its own fresh AES-256-GCM data key (DEK).
// The DEK is wrapped (AES-256-GCM) under the patient's current
// key-encryption key (KEK). Both GCM operations take associated data that
// names the format version, the algorithm, the KEK ID, the patient ID and the
// reading ID, so a sealed reading only opens under the record it was sealed
// for: bytes moved to another reading or another patient fail with
// [ErrCorrupt] or [ErrWrongKey].
//
// # Keyring
//
// A [Keyring] holds the patients' KEKs in a bbolt file. Each KEK is stored
// encrypted (AES-256-GCM) under a 32-byte master key, with associated data
// binding it to its patient and key ID; the master key itself never touches
// the keyring file (a check value lets [OpenKeyring] refuse a wrong master
// key with [ErrWrongMasterKey]). [LoadOrCreateMasterKey] reads the master key
// from a file, creating it with mode 0600 on first use; callers that take it
// from the environment use [ParseMasterKey]. This package reads no
// environment itself.
//
// A patient's first [Keyring.Seal] creates its KEK (one disk write). After
// that, Seal and Open run from a bounded in-memory cache of unwrapped KEKs
// and touch no disk. [Keyring.Rotate] gives the patient a new current KEK:
// new readings use it, readings sealed under older KEKs still open.
//
// # Erasure
//
// [Keyring.Shred] destroys all of a patient's KEKs and leaves a tombstone, so
// every reading sealed for that patient fails to open with [ErrErased], and
// new readings for the patient are refused with the same error. Hashes and
// CIDs recorded elsewhere (the ledger, IPFS) are untouched and remain
// evidence that the readings existed.
//
// bbolt is copy-on-write: rewriting or deleting a value frees its old page
// without clearing it. Shred therefore compacts the keyring into a new file
// holding only live data, renames it over the old one and overwrites the old
// file's bytes with zeros before closing it. This removes the wrapped KEKs
// from the keyring file as the filesystem presents it; it cannot reach copies
// below the filesystem (SSD wear levelling, copy-on-write filesystems,
// snapshots, backups), which is why the KEKs on disk are only ever stored
// encrypted under the master key. A crash between the rename and the
// overwrite leaves the old bytes in an unlinked file. Unwrapped KEKs in
// process memory are dropped from the cache; Go gives no guarantee that
// copies made by the runtime are cleared.
//
// # Sealed format, version 1
//
// All integers are big-endian; offsets in bytes.
//
//	offset  size  field
//	0       1     version            0x01
//	1       1     algorithm          0x01 = AES-256-GCM data, AES-256-GCM key wrap
//	2       16    key ID             the patient KEK that wraps the data key
//	18      12    wrap nonce
//	30      48    wrapped data key   AES-256-GCM(KEK, 32-byte DEK) with its 16-byte tag
//	78      12    data nonce
//	90      n+16  ciphertext         AES-256-GCM(DEK, plaintext) with its 16-byte tag
//
// The associated data of the key wrap is
// "medprov/seal/v1/dek" || bytes 0..18 || lp(patientID) || lp(readingID),
// and that of the data is
// "medprov/seal/v1/data" || bytes 0..90 || lp(patientID) || lp(readingID),
// where lp(s) is the 4-byte length of s followed by s. Input shorter than 106
// bytes is [ErrTruncated]; another version byte is [ErrUnsupportedVersion];
// another algorithm byte is [ErrUnsupportedAlgorithm]; a key ID the patient
// never had is [ErrWrongKey]; any authentication failure is [ErrCorrupt].
// The key ID is random, so it reveals neither the patient nor the reading,
// though readings sealed under the same KEK share it.
package seal
