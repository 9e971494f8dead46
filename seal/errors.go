package seal

import "errors"

// Errors returned by this package. Callers test for them with errors.Is; the
// returned errors wrap them with the patient and reading concerned.
var (
	// ErrErased reports that the patient's keys were destroyed by
	// [Keyring.Shred]: their readings can never be opened again.
	ErrErased = errors.New("seal: patient data erased")
	// ErrTruncated reports sealed input shorter than the format requires.
	ErrTruncated = errors.New("seal: sealed data truncated")
	// ErrUnsupportedVersion reports a format version this package does not know.
	ErrUnsupportedVersion = errors.New("seal: unsupported format version")
	// ErrUnsupportedAlgorithm reports an algorithm byte this package does not know.
	ErrUnsupportedAlgorithm = errors.New("seal: unsupported algorithm")
	// ErrWrongKey reports sealed data whose key ID is not one of the
	// patient's keys: it was sealed for another patient or another keyring.
	ErrWrongKey = errors.New("seal: sealed under a key the patient does not have")
	// ErrCorrupt reports sealed data that fails authentication: its bytes
	// were altered, or it was sealed for another reading.
	ErrCorrupt = errors.New("seal: sealed data failed authentication")
	// ErrWrongMasterKey reports a master key that does not open the keyring.
	ErrWrongMasterKey = errors.New("seal: master key does not open this keyring")
	// ErrClosed reports use of a closed keyring.
	ErrClosed = errors.New("seal: keyring closed")
)
