package route

import (
	"fmt"
	"regexp"

	"github.com/gproxy/gproxy/parser/config"
)

// collectNamedCaptures gives every named group of every regex in the
// configuration a slot: in nginx each becomes a variable.
func (t *Table) collectNamedCaptures(h *config.HTTP) {
	add := func(re *regexp.Regexp) {
		if re == nil {
			return
		}
		for _, n := range re.SubexpNames() {
			if _, ok := t.named[n]; n != "" && !ok {
				t.named[n] = len(t.named)
			}
		}
	}
	var steps func([]config.RewriteStep)
	steps = func(ss []config.RewriteStep) {
		for _, s := range ss {
			if s.If != nil {
				add(s.If.Cond.Regex)
				steps(s.If.Body)
			}
			if s.Rewrite != nil {
				add(s.Rewrite.Regex)
			}
		}
	}
	var locs func([]*config.Location)
	locs = func(ls []*config.Location) {
		for _, l := range ls {
			add(l.Regex)
			steps(l.Rewrite)
			locs(l.Locations)
		}
	}
	for _, s := range h.Servers {
		for _, n := range s.Names {
			add(n.Regex)
		}
		steps(s.Rewrite)
		locs(s.Locations)
	}
	for _, m := range h.Maps {
		for _, x := range m.Regexes {
			add(x.Regex)
		}
	}
}

// checkTemplates rejects templates naming variables gproxy cannot expand
// (nginx: `unknown "foo" variable`) and notes whether captures are read.
func (t *Table) checkTemplates(h *config.HTTP) error {
	check := func(tpl config.Template, pos config.Pos) error {
		for _, p := range tpl.Parts {
			if p.Var == "" {
				continue
			}
			ref, ok := t.resolve(p.Var)
			if !ok {
				return fmt.Errorf("unknown %q variable in %s", p.Var, posString(pos))
			}
			if ref.v == captureRow || ref.v == namedRow {
				t.needCaps = true
			}
		}
		return nil
	}
	var steps func([]config.RewriteStep) error
	steps = func(ss []config.RewriteStep) error {
		for _, s := range ss {
			if r := s.Return; r != nil {
				if err := check(r.Text, r.Pos); err != nil {
					return err
				}
			}
			if f := s.If; f != nil {
				for _, tpl := range []config.Template{f.Cond.Left, f.Cond.Right} {
					if err := check(tpl, f.Pos); err != nil {
						return err
					}
				}
				if gp := f.GRPCPass; gp != nil {
					if err := check(gp.Target, gp.Pos); err != nil {
						return err
					}
				}
				if err := steps(f.Body); err != nil {
					return err
				}
			}
			if sv := s.Set; sv != nil {
				if err := check(sv.Value, sv.Pos); err != nil {
					return err
				}
			}
			if rw := s.Rewrite; rw != nil {
				if err := check(rw.Replacement, rw.Pos); err != nil {
					return err
				}
			}
		}
		return nil
	}
	settings := func(st *config.Settings, pos config.Pos) error {
		for _, hd := range st.GRPC.SetHeaders {
			if err := check(hd.Value, pos); err != nil {
				return err
			}
		}
		for _, lg := range st.AccessLogs {
			if lg.If != nil {
				if err := check(*lg.If, lg.Pos); err != nil {
					return err
				}
			}
		}
		for _, list := range [][]config.AddHeader{st.AddHeaders, st.AddTrailers} {
			for _, hd := range list {
				if err := check(hd.Value, pos); err != nil {
					return err
				}
			}
		}
		for _, ep := range st.ErrorPages {
			if err := check(ep.URI, ep.Pos); err != nil {
				return err
			}
		}
		return check(st.GRPC.SSLName, pos)
	}
	var locs func([]*config.Location) error
	locs = func(ls []*config.Location) error {
		for _, l := range ls {
			if err := steps(l.Rewrite); err != nil {
				return err
			}
			if err := settings(&l.Settings, l.Pos); err != nil {
				return err
			}
			if gp := l.GRPCPass; gp != nil {
				if err := check(gp.Target, gp.Pos); err != nil {
					return err
				}
			}
			for _, s := range l.Rewrite {
				if s.If != nil && s.If.Settings != nil {
					if err := settings(s.If.Settings, s.If.Pos); err != nil {
						return err
					}
				}
			}
			if err := locs(l.Locations); err != nil {
				return err
			}
		}
		return nil
	}
	for _, s := range h.Servers {
		if err := steps(s.Rewrite); err != nil {
			return err
		}
		if err := settings(&s.Settings, s.Pos); err != nil {
			return err
		}
		if err := locs(s.Locations); err != nil {
			return err
		}
	}
	for _, m := range h.Maps {
		for _, tpl := range mapTemplates(m) {
			if err := check(tpl, m.Pos); err != nil {
				return err
			}
		}
	}
	for _, f := range h.LogFormats {
		if err := check(f.Format, f.Pos); err != nil {
			return err
		}
	}
	for _, u := range h.Upstreams {
		if err := check(u.Balance.Key, u.Balance.Pos); err != nil {
			return err
		}
	}
	return nil
}
