// Package responder holds Astra's domain: outbox messages, events, Better Auth's
// user/session/account records, the application error type, and the Store
// interface that every storage backend implements. It imports nothing from the
// rest of the project, so every other package points inward to it.
package responder
