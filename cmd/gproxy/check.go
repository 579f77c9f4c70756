package main

import (
	"fmt"
	"io"
)

// testConfig is -t and -T: load the configuration, print warnings and the
// verdict in nginx's words on stderr, and for -T dump every file read to
// stdout under nginx's "# configuration file PATH:" headers.
func testConfig(p paths, o options, stdout, stderr io.Writer) int {
	cfg, warnings, err := p.load()
	for i := range warnings {
		fmt.Fprintf(stderr, "gproxy: %s\n", warnings[i].Error())
	}
	if err == nil && checkEngine != nil {
		// What the engine refuses at start fails the test too.
		err = checkEngine(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: %s\n", diagnostic(err))
		fmt.Fprintf(stderr, "gproxy: configuration file %s test failed\n", p.conf)
		return 1
	}
	// As nginx -t opens the cycle's files, open (creating if need be)
	// the error logs start would open, so that a log start cannot open
	// fails the test too.
	set, err := openLogSet(cfg.ErrorLogs, p.errorLog)
	if err != nil {
		fmt.Fprintf(stderr, "gproxy: [emerg] %s\n", err)
		fmt.Fprintf(stderr, "gproxy: configuration file %s test failed\n", p.conf)
		return 1
	}
	set.close()
	if !o.quiet {
		fmt.Fprintf(stderr, "gproxy: the configuration file %s syntax is ok\n", p.conf)
		fmt.Fprintf(stderr, "gproxy: configuration file %s test is successful\n", p.conf)
	}
	if o.dump {
		for _, f := range cfg.Files {
			fmt.Fprintf(stdout, "# configuration file %s:\n%s\n", f.Path, f.Data)
		}
	}
	return 0
}
