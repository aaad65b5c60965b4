// Command lua-health runs Argo CD resource health checks (health.lua) against their test cases
// (health_test.yaml) the way Argo CD runs them: with gopher-lua (Lua 5.1), the same standard
// libraries, the object decoded into the global `obj`, and the returned table read as
// {status, message}. It also checks, or writes, an argocd-cm snippet that carries the same
// scripts byte for byte.
//
//	lua-health [-cm argocd-cm.yaml | -write-cm argocd-cm.yaml] RESOURCE_CUSTOMIZATIONS_DIR
//
// The directory has Argo CD's layout: <group>/<Kind>/health.lua, <group>/<Kind>/health_test.yaml
// (tests: [{healthStatus: {status, message}, inputPath: testdata/x.yaml}]) and the inputs.
// Every case runs twice, once per library set Argo CD uses:
//
//	argocd-cm  a script from argocd-cm without useOpenLibs (the default for custom checks):
//	           lua.NewState with SkipOpenLibs, then package, base, table and Argo CD's "safe os"
//	           (time and date only, registered the way Argo CD registers them); no string, math,
//	           io or full os library;
//	open-libs  a built-in check, or argocd-cm with resource.customizations.useOpenLibs.<group>_<kind>
//	           set: gopher-lua's full standard library plus the same additions.
//
// A check must give the expected result in both. The exit status is non-zero on any mismatch,
// any script error, an input no test refers to, or an argocd-cm snippet that differs.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const (
	healthScript = "health.lua"
	healthTests  = "health_test.yaml"
	cmKeyPrefix  = "resource.customizations.health."
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type testFile struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

// check is one health.lua with its group/kind, as found under the directory.
type check struct {
	dir, group, kind, script string
}

func (c check) key() string { return c.group + "/" + c.kind }

// cmKey is the argocd-cm data key Argo CD reads this check from.
func (c check) cmKey() string { return cmKeyPrefix + c.group + "_" + c.kind }

type mode struct {
	name     string
	openLibs bool
}

var modes = []mode{{"argocd-cm", false}, {"open-libs", true}}

func main() {
	cmPath := flag.String("cm", "", "verify that this argocd-cm snippet carries exactly the health.lua scripts")
	writeCM := flag.String("write-cm", "", "write the argocd-cm snippet carrying the health.lua scripts, then verify it")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: lua-health [-cm FILE | -write-cm FILE] RESOURCE_CUSTOMIZATIONS_DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || (*cmPath != "" && *writeCM != "") {
		flag.Usage()
		os.Exit(2)
	}
	root := flag.Arg(0)
	checks, err := findChecks(root)
	if err != nil {
		fatal(err)
	}
	if len(checks) == 0 {
		fatal(fmt.Errorf("no %s under %s", healthScript, root))
	}

	failures := 0
	cases := 0
	for _, c := range checks {
		n, f := runCheck(c)
		cases += n
		failures += f
	}
	if *writeCM != "" {
		if err := os.WriteFile(*writeCM, renderCM(checks), 0o644); err != nil {
			fatal(err)
		}
		fmt.Printf("wrote  %s\n", *writeCM)
		*cmPath = *writeCM
	}
	if *cmPath != "" {
		failures += verifyCM(*cmPath, checks)
	}
	if failures > 0 {
		fmt.Printf("FAILED: %d problem(s); %d case(s) in %d check(s)\n", failures, cases, len(checks))
		os.Exit(1)
	}
	fmt.Printf("PASS: %d case(s) in %d check(s), each under %d library sets\n", cases, len(checks), len(modes))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "lua-health:", err)
	os.Exit(2)
}

func findChecks(root string) ([]check, error) {
	var checks []check
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != healthScript {
			return nil
		}
		dir := filepath.Dir(path)
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) != 2 {
			return fmt.Errorf("%s: expected <group>/<Kind>/%s", path, healthScript)
		}
		script, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checks = append(checks, check{dir: dir, group: parts[0], kind: parts[1], script: string(script)})
		return nil
	})
	sort.Slice(checks, func(i, j int) bool { return checks[i].key() < checks[j].key() })
	return checks, err
}

// runCheck runs every case of one check under every library set; it returns the number of cases
// and of failures, printing one line per case.
func runCheck(c check) (cases, failures int) {
	fail := func(format string, args ...any) {
		fmt.Printf("FAIL  %s: %s\n", c.key(), fmt.Sprintf(format, args...))
		failures++
	}
	raw, err := os.ReadFile(filepath.Join(c.dir, healthTests))
	if err != nil {
		fail("%v", err)
		return 0, failures
	}
	var tests testFile
	if err := yaml.UnmarshalStrict(raw, &tests); err != nil {
		fail("%s: %v", healthTests, err)
		return 0, failures
	}
	if len(tests.Tests) == 0 {
		fail("%s has no tests", healthTests)
	}
	used := map[string]bool{}
	for _, t := range tests.Tests {
		cases++
		name := fmt.Sprintf("%s %s", c.key(), t.InputPath)
		used[filepath.Clean(t.InputPath)] = true
		obj, err := readObject(filepath.Join(c.dir, t.InputPath))
		if err != nil {
			fail("%s: %v", t.InputPath, err)
			continue
		}
		if g, k := groupKind(obj); g != c.group || k != c.kind {
			fail("%s: the object is %s/%s, not %s", t.InputPath, g, k, c.key())
			continue
		}
		ok := true
		var got healthStatus
		for _, m := range modes {
			res, err := executeHealthLua(obj, c.script, m.openLibs)
			if err != nil {
				fail("%s [%s]: %v", t.InputPath, m.name, err)
				ok = false
				continue
			}
			if res != t.HealthStatus {
				fail("%s [%s]:\n        want %s %q\n        got  %s %q", t.InputPath, m.name,
					t.HealthStatus.Status, t.HealthStatus.Message, res.Status, res.Message)
				ok = false
			}
			got = res
		}
		if ok {
			fmt.Printf("ok    %-62s %-11s %q\n", name, got.Status, got.Message)
		}
	}
	// Every captured input must be under test.
	entries, _ := os.ReadDir(filepath.Join(c.dir, "testdata"))
	for _, e := range entries {
		rel := filepath.Join("testdata", e.Name())
		if !e.IsDir() && !used[rel] {
			fail("%s is not referenced by %s", rel, healthTests)
		}
	}
	return cases, failures
}

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// As Argo CD's own health tests do: YAML -> JSON -> map, numbers as float64.
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if _, has := meta["managedFields"]; has {
			return nil, fmt.Errorf("metadata.managedFields must be stripped from fixtures")
		}
	}
	return obj, nil
}

func groupKind(obj map[string]any) (string, string) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	group := ""
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	return group, kind
}

// newState sets up the interpreter as Argo CD's util/lua does for health scripts.
func newState(openLibs bool) *lua.LState {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		// Argo CD's "safe os": it registers its functions under the table library's name, so
		// they end up in `table`, and `os` is reachable only through require("os").
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			panic(err)
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)
	return l
}

func executeHealthLua(obj map[string]any, script string, openLibs bool) (healthStatus, error) {
	l := newState(openLibs)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret := l.Get(-1)
	tbl, ok := ret.(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	var hs healthStatus
	for field, dst := range map[string]*string{"status": &hs.Status, "message": &hs.Message} {
		switch v := tbl.RawGetString(field).(type) {
		case *lua.LNilType:
		case lua.LString:
			*dst = string(v)
		default:
			return healthStatus{}, fmt.Errorf("%s must be a string, not %s", field, v.Type())
		}
	}
	switch hs.Status {
	case "Healthy", "Progressing", "Suspended", "Degraded", "Missing", "Unknown":
		return hs, nil
	}
	return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
}

// toLua converts a decoded object as Argo CD does: maps to hash tables, lists to array tables,
// numbers to Lua numbers, json.Number to strings, null to nil.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetH(lua.LString(k), toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// The "safe os" subset Argo CD offers: time() and date().
var safeOsFuncs = map[string]lua.LGFunction{"time": osTime, "date": osDate}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOsFuncs))
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs))
	return 1
}

func osTime(l *lua.LState) int {
	if l.GetTop() == 0 {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}
	t := l.CheckTable(1)
	field := func(name string, def int) int {
		if n, ok := t.RawGetString(name).(lua.LNumber); ok {
			return int(n)
		}
		return def
	}
	when := time.Date(field("year", -1), time.Month(field("month", -1)), field("day", -1),
		field("hour", 12), field("min", 0), field("sec", 0), 0, time.Local)
	l.Push(lua.LNumber(when.Unix()))
	return 1
}

func osDate(l *lua.LState) int {
	t := time.Now()
	format := "%c"
	if l.GetTop() >= 1 {
		format = l.CheckString(1)
		if strings.HasPrefix(format, "!") {
			t = t.UTC()
			format = strings.TrimLeft(format, "!")
		}
		if l.GetTop() >= 2 {
			t = time.Unix(l.CheckInt64(2), 0)
		}
	}
	if strings.HasPrefix(format, "*t") {
		r := l.NewTable()
		for k, v := range map[string]int{"year": t.Year(), "month": int(t.Month()), "day": t.Day(),
			"hour": t.Hour(), "min": t.Minute(), "sec": t.Second(), "wday": int(t.Weekday()) + 1, "yday": t.YearDay()} {
			r.RawSetString(k, lua.LNumber(v))
		}
		r.RawSetString("isdst", lua.LFalse)
		l.Push(r)
		return 1
	}
	layouts := map[byte]string{'a': "Mon", 'A': "Monday", 'b': "Jan", 'B': "January", 'c': "02 Jan 06 15:04 MST",
		'd': "02", 'F': "2006-01-02", 'H': "15", 'I': "03", 'm': "01", 'M': "04", 'p': "PM", 'S': "05",
		'x': "01/02/06", 'X': "15:04:05", 'y': "06", 'Y': "2006", 'z': "-0700", 'Z': "MST"}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		if layout, ok := layouts[format[i]]; ok {
			b.WriteString(t.Format(layout))
		} else if format[i] == '%' {
			b.WriteByte('%')
		} else {
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	l.Push(lua.LString(b.String()))
	return 1
}

// renderCM writes the argocd-cm snippet: one data key per check, the script as a literal block.
func renderCM(checks []check) []byte {
	var b bytes.Buffer
	b.WriteString(`# Generated by scripts/lua-health.sh --write-cm from deploy/argocd/resource_customizations/:
# edit the health.lua files, then regenerate. scripts/lua-health.sh fails when this file's scripts
# differ from them.
#
# Argo CD health checks for the remote-assist-operator's kinds. Merge into Argo CD's argocd-cm:
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file deploy/argocd/argocd-cm.yaml
# (or copy the data keys into the Helm chart's configs.cm). See deploy/argocd/README.md.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`)
	for _, c := range checks {
		indicator := "|"
		switch {
		case strings.HasSuffix(c.script, "\n\n"):
			fatal(fmt.Errorf("%s/%s ends with blank lines; a literal block cannot keep them", c.key(), healthScript))
		case !strings.HasSuffix(c.script, "\n"):
			indicator = "|-"
		}
		if strings.HasPrefix(c.script, " ") || strings.HasPrefix(c.script, "\n") {
			fatal(fmt.Errorf("%s/%s must not start with a space or a blank line", c.key(), healthScript))
		}
		fmt.Fprintf(&b, "  %s: %s\n", c.cmKey(), indicator)
		for _, line := range strings.SplitAfter(strings.TrimSuffix(c.script, "\n"), "\n") {
			if strings.TrimRight(line, "\n") == "" {
				b.WriteString("\n")
			} else {
				b.WriteString("    " + line)
			}
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// verifyCM checks that the snippet is an argocd-cm ConfigMap whose health keys for the checked
// groups are exactly the health.lua files, byte for byte.
func verifyCM(path string, checks []check) (failures int) {
	fail := func(format string, args ...any) {
		fmt.Printf("FAIL  %s: %s\n", path, fmt.Sprintf(format, args...))
		failures++
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
		return
	}
	var cm struct {
		APIVersion string                `json:"apiVersion"`
		Kind       string                `json:"kind"`
		Metadata   struct{ Name string } `json:"metadata"`
		Data       map[string]string     `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		fail("%v", err)
		return
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" {
		fail("not the v1 ConfigMap argocd-cm")
	}
	want := map[string]check{}
	groups := map[string]bool{}
	for _, c := range checks {
		want[c.cmKey()] = c
		groups[c.group] = true
	}
	for _, c := range checks {
		got, ok := cm.Data[c.cmKey()]
		switch {
		case !ok:
			fail("no %s (run scripts/lua-health.sh --write-cm)", c.cmKey())
		case got != c.script:
			fail("%s differs from %s/%s (run scripts/lua-health.sh --write-cm)", c.cmKey(), c.key(), healthScript)
		default:
			fmt.Printf("ok    %-62s identical to %s/%s\n", c.cmKey(), c.key(), healthScript)
		}
	}
	for k := range cm.Data {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, cmKeyPrefix) {
			for g := range groups {
				if strings.HasPrefix(k, cmKeyPrefix+g+"_") {
					fail("%s has no %s in the directory", k, healthScript)
				}
			}
		}
	}
	return failures
}
