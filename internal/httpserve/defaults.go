package httpserve

// fallbackMaxConnections is the cap when the descriptor limit is unknown.
const fallbackMaxConnections = 4096

// DefaultMaxConnections is three quarters of the process's file-descriptor
// limit (Go raises the soft limit to the hard one at start): the quarter
// left over, at least 64, is the reserve for the database, log files, the
// engine's outbound calls and the descriptors Accept needs to turn a
// connection away.
func DefaultMaxConnections() int {
	n, ok := fdLimit()
	if !ok {
		return fallbackMaxConnections
	}
	reserve := max(n/4, 64)
	if n <= reserve+16 {
		return 16
	}
	return int(min(n-reserve, 1<<20))
}

// Reserve says how many descriptors a cap leaves for everything else, or
// -1 when the limit is unknown; start logs it so an operator sees a cap set
// too close to the limit.
func Reserve(maxConns int) int {
	n, ok := fdLimit()
	if !ok {
		return -1
	}
	return int(n) - maxConns
}
