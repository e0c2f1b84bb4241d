//go:build !unix

package httpserve

func fdLimit() (uint64, bool) { return 0, false }
