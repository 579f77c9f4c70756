package main

import (
	"go.uber.org/zap"

	"github.com/gproxy/gproxy/parser/config"
	"github.com/gproxy/gproxy/proxy"
)

// init wires the engine: proxy.Server is the engine; the adapter exists
// only because a function returning *proxy.Server is not one returning
// engine. checkEngine is the engine's own verdict, which -t runs after
// the parser's so -t and start never disagree.
func init() {
	newEngine = func(cfg *config.Config, log *zap.Logger) (engine, error) {
		s, err := proxy.New(cfg, log)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	checkEngine = proxy.Check
}
