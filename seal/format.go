package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// Format constants of sealed data, version 1 (see the package doc).
const (
	// Version1 is the only format version this package writes and reads.
	Version1 byte = 0x01
	// AlgAES256GCM means AES-256-GCM for the data and for the key wrap.
	AlgAES256GCM byte = 0x01
	// KeyIDSize is the size of a KEK ID.
	KeyIDSize = 16
	// Overhead is how many bytes Seal adds to a plaintext.
	Overhead = headerSize + tagSize

	keySize     = 32
	nonceSize   = 12
	tagSize     = 16
	wrappedSize = keySize + tagSize

	offKeyID     = 2
	offWrapNonce = offKeyID + KeyIDSize
	offWrapped   = offWrapNonce + nonceSize
	offDataNonce = offWrapped + wrappedSize
	headerSize   = offDataNonce + nonceSize

	adDEK  = "medprov/seal/v1/dek"
	adData = "medprov/seal/v1/data"
)

// KeyID identifies one key-encryption key of one patient.
type KeyID [KeyIDSize]byte

// Header is the plaintext part of sealed data.
type Header struct {
	Version   byte
	Algorithm byte
	KeyID     KeyID
}

// ParseHeader checks the framing of sealed data and returns its header.
// It does not authenticate anything: a nil error means only that the input
// is long enough and of a known version and algorithm.
func ParseHeader(sealed []byte) (Header, error) {
	if len(sealed) < 2 {
		return Header{}, fmt.Errorf("%w: %d bytes", ErrTruncated, len(sealed))
	}
	h := Header{Version: sealed[0], Algorithm: sealed[1]}
	if h.Version != Version1 {
		return Header{}, fmt.Errorf("%w: %#x", ErrUnsupportedVersion, h.Version)
	}
	if h.Algorithm != AlgAES256GCM {
		return Header{}, fmt.Errorf("%w: %#x", ErrUnsupportedAlgorithm, h.Algorithm)
	}
	if len(sealed) < Overhead {
		return Header{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrTruncated, len(sealed), Overhead)
	}
	copy(h.KeyID[:], sealed[offKeyID:offWrapNonce])
	return h, nil
}

// associatedData builds prefix || fixed || lp(patientID) || lp(readingID).
func associatedData(prefix string, fixed []byte, patientID, readingID string) []byte {
	ad := make([]byte, 0, len(prefix)+len(fixed)+8+len(patientID)+len(readingID))
	ad = append(ad, prefix...)
	ad = append(ad, fixed...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(patientID)))
	ad = append(ad, patientID...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(readingID)))
	ad = append(ad, readingID...)
	return ad
}

// sealWith encrypts plaintext under a fresh data key wrapped by kek.
func sealWith(kek cipher.AEAD, keyID KeyID, patientID, readingID string, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = Version1
	out[1] = AlgAES256GCM
	copy(out[offKeyID:], keyID[:])

	var dek [keySize]byte
	if _, err := rand.Read(dek[:]); err != nil {
		return nil, fmt.Errorf("seal: data key: %w", err)
	}
	defer clear(dek[:])
	if _, err := rand.Read(out[offWrapNonce:offWrapped]); err != nil {
		return nil, fmt.Errorf("seal: wrap nonce: %w", err)
	}
	if _, err := rand.Read(out[offDataNonce:headerSize]); err != nil {
		return nil, fmt.Errorf("seal: data nonce: %w", err)
	}

	wrapAD := associatedData(adDEK, out[:offWrapNonce], patientID, readingID)
	kek.Seal(out[offWrapped:offWrapped], out[offWrapNonce:offWrapped], dek[:], wrapAD)

	data, err := newGCM(dek[:])
	if err != nil {
		return nil, err
	}
	dataAD := associatedData(adData, out[:headerSize], patientID, readingID)
	return data.Seal(out, out[offDataNonce:headerSize], plaintext, dataAD), nil
}

// openWith reverses sealWith; the header must already have been parsed.
func openWith(kek cipher.AEAD, patientID, readingID string, sealed []byte) ([]byte, error) {
	wrapAD := associatedData(adDEK, sealed[:offWrapNonce], patientID, readingID)
	var dek [keySize]byte
	if _, err := kek.Open(dek[:0], sealed[offWrapNonce:offWrapped], sealed[offWrapped:offDataNonce], wrapAD); err != nil {
		return nil, fmt.Errorf("%w: data key does not unwrap for this record", ErrCorrupt)
	}
	defer clear(dek[:])
	data, err := newGCM(dek[:])
	if err != nil {
		return nil, err
	}
	dataAD := associatedData(adData, sealed[:headerSize], patientID, readingID)
	plaintext, err := data.Open(nil, sealed[offDataNonce:headerSize], sealed[headerSize:], dataAD)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext does not authenticate for this record", ErrCorrupt)
	}
	return plaintext, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: gcm: %w", err)
	}
	return aead, nil
}
