package chaincode

import "github.com/medprov/medprov/wire"

// refuse returns a refusal: the chaincode answers every decision it makes
// about its input with a *wire.Error, whose text survives Fabric's wrapping.
func refuse(code wire.Code, format string, args ...any) *wire.Error {
	return wire.Errorf(code, format, args...)
}

func invalid(format string, args ...any) *wire.Error {
	return refuse(wire.CodeInvalid, format, args...)
}
