//go:build !cgo

package opensslrsa

const cgoEnabled = false
