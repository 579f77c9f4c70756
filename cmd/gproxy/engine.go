package main

import (
	"context"

	"go.uber.org/zap"

	"github.com/gproxy/gproxy/parser/config"
)

// engine is what the run mode needs from the proxy engine; *proxy.Server
// provides it.
type engine interface {
	// Start opens the listeners and serves; it returns once listening.
	Start() error
	// Reload swaps in a new configuration; on error the old one stays.
	Reload(cfg *config.Config) error
	// Shutdown stops accepting, sends GOAWAY and waits for streams to end
	// or ctx to expire.
	Shutdown(ctx context.Context) error
	// Close stops at once.
	Close() error
}

// logReopener is implemented by an engine that writes its own log files
// (access logs); USR1 calls it after reopening the error log.
type logReopener interface {
	ReopenLogs() error
}

// newEngine builds the engine for a configuration. It is a variable so the
// wiring to the proxy package lives in one place (engine_proxy.go).
var newEngine func(cfg *config.Config, log *zap.Logger) (engine, error)

// checkEngine builds a configuration's running state without opening
// listeners and reports what start would refuse; nil means the engine
// has no verdict of its own (tests of the command line alone).
var checkEngine func(cfg *config.Config) error
