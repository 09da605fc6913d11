// Test double of the stellar-core and stellar-horizon binaries, for deployment tests only.
//
// It never ships: tests build it into build/doubles/ and images tagged "test-double", so the
// stellar_core and horizon roles can be run for real (first-start initialisation exactly once,
// start, wait for Synced!, restart decisions) where the real binaries cannot be installed.
// Shapes and refusals follow shared/reference/stellar-core-19.14 (info, quorum, new-hist before
// new-db). It reaches no consensus: each validator closes its own ledgers on a clock.
//
// Every invocation is appended to /var/lib/stellar/double-calls.log so tests can see what ran.
package main

import (
	"bufio"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The versions inventories/local pins: the pair the real binaries in shared/bin are.
const (
	version        = "v19.14.0-dlnet-test-double"
	horizonVersion = "horizon-v2.26.1-dlnet-test-double"
	protocol       = 19
)

// metricsBody is the body of GET /metrics captured from a real validator
// (shared/reference/stellar-core-19.14/accelerated-1s/http/metrics.json), served as captured so the
// exporters (SDF's and dlnet's) read real medida shapes.
//
//go:embed metrics.json
var metricsBody []byte

// unknownCommand is stellar-core 19.14's 404 body for a command it does not know
// (shared/reference/stellar-core-19.14/accelerated-1s/http/unknown-command.txt).
const unknownCommand = `<b>Welcome to stellar-core!</b><p>Supported HTTP commands are listed in the ` +
	`<a href="https://github.com/stellar/stellar-core/blob/master/docs/software/commands.md#http-commands">docs</a> ` +
	`as well as in the man pages.</p><p>Have fun!</p>`

type config struct {
	passphrase  string
	httpPort    int
	peerPort    int
	accelerate  bool
	validators  []string
	dataDir     string
	archive     string
	homeDomain  string
	unknownKeys []string
}

// known lists the top-level keys the double accepts; stellar-core refuses unknown ones.
var known = map[string]bool{
	"NETWORK_PASSPHRASE": true, "NODE_SEED": true, "NODE_IS_VALIDATOR": true, "NODE_HOME_DOMAIN": true,
	"HTTP_PORT": true, "PUBLIC_HTTP_PORT": true, "PEER_PORT": true, "DATABASE": true, "BUCKET_DIR_PATH": true,
	"ALLOW_LOCALHOST_FOR_TESTING": true, "PREFERRED_PEERS_ONLY": true, "PREFERRED_PEERS": true,
	"PREFERRED_PEER_KEYS": true, "UNSAFE_QUORUM": true,
	"ARTIFICIALLY_ACCELERATE_TIME_FOR_TESTING": true, "HTTP_QUERY_PORT": true, "CATCHUP_RECENT": true,
}

func parseConfig(path string) config {
	c := config{dataDir: "/var/lib/stellar", archive: "/var/lib/stellar/archive", httpPort: 11626, peerPort: 11625}
	f, err := os.Open(path)
	if err != nil {
		fatal("Failed to parse '%s' :%v", path, err)
	}
	defer f.Close()
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		switch {
		case section == "VALIDATORS" && k == "NAME":
			c.validators = append(c.validators, v)
		case section != "":
		case k == "NETWORK_PASSPHRASE":
			c.passphrase = v
		case k == "HTTP_PORT":
			c.httpPort, _ = strconv.Atoi(v)
		case k == "PEER_PORT":
			c.peerPort, _ = strconv.Atoi(v)
		case k == "ARTIFICIALLY_ACCELERATE_TIME_FOR_TESTING":
			c.accelerate = v == "true"
		case k == "NODE_HOME_DOMAIN":
			c.homeDomain = v
		}
		if section == "" && !known[k] {
			c.unknownKeys = append(c.unknownKeys, k)
		}
	}
	if len(c.unknownKeys) > 0 {
		fatal("Failed to parse '%s' :Unknown configuration entry: '%s'", path, c.unknownKeys[0])
	}
	return c
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[default FATAL] Got an exception: "+format+"\n", args...)
	os.Exit(1)
}

type state struct {
	Ledger int    `json:"ledger"`
	Hash   string `json:"hash"`
}

func (c config) stateFile() string { return filepath.Join(c.dataDir, "stellar.db") }

func (c config) load() (state, bool) {
	var s state
	b, err := os.ReadFile(c.stateFile())
	if err != nil {
		return s, false
	}
	return s, json.Unmarshal(b, &s) == nil
}

func (c config) save(s state) {
	b, _ := json.Marshal(s)
	tmp := c.stateFile() + ".tmp"
	_ = os.WriteFile(tmp, b, 0o600)
	_ = os.Rename(tmp, c.stateFile())
}

func hashOf(passphrase string, ledger int, prev string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%s", passphrase, ledger, prev)))
	return hex.EncodeToString(h[:])
}

func record(dir string, args []string) {
	f, err := os.OpenFile(filepath.Join(dir, "double-calls.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), strings.Join(args, " "))
		f.Close()
	}
}

func confArg(args []string) string {
	for i, a := range args {
		if a == "--conf" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return "stellar-core.cfg"
}

func has(args []string, flag string) bool {
	for _, a := range args {
		if a == flag {
			return true
		}
	}
	return false
}

func main() {
	if strings.HasSuffix(filepath.Base(os.Args[0]), "horizon") {
		if len(os.Args) > 1 && os.Args[1] == "version" {
			fmt.Println(horizonVersion)
			return
		}
		horizon()
		return
	}
	args := os.Args[1:]
	if len(args) == 0 {
		fatal("no command")
	}
	switch args[0] {
	case "version":
		fmt.Println(version)
		return
	case "check-quorum-intersection":
		// 19.14 has no such command (it arrives in 21): usage on stdout, exit 1, as the real binary.
		fmt.Println("usage:\n  stellar-core COMMAND")
		os.Exit(1)
	}
	c := parseConfig(confArg(args))
	record(c.dataDir, args)
	switch args[0] {
	case "new-db":
		// Real stellar-core logs the root account's secret seed here (reference README 10).
		s := state{Ledger: 1, Hash: hashOf(c.passphrase, 1, "")}
		c.save(s)
		fmt.Printf("Root account seed: DOUBLE-ROOT-SEED-%s\n", hashOf(c.passphrase, 0, "seed")[:32])
	case "new-hist":
		if _, ok := c.load(); !ok {
			fatal("No DB schema version found, try stellar-core new-db")
		}
		wk := filepath.Join(c.archive, ".well-known", "stellar-history.json")
		if _, err := os.Stat(wk); err == nil {
			fatal("History archive 'local' already initialized!")
		}
		_ = os.MkdirAll(filepath.Dir(wk), 0o755)
		writeHAS(wk, 0, c.passphrase)
	case "offline-info":
		s, _ := c.load()
		out, _ := json.Marshal(map[string]any{"info": map[string]any{
			"build": version, "state": "Booting", "network": c.passphrase,
			"ledger": map[string]any{"num": s.Ledger, "hash": s.Hash},
		}})
		fmt.Println(string(out))
	case "run":
		run(c, has(args, "--wait-for-consensus"))
	default:
		fatal("unknown command %s", args[0])
	}
}

func writeHAS(path string, ledger int, passphrase string) {
	b, _ := json.MarshalIndent(map[string]any{
		"version": 1, "server": version, "currentLedger": ledger, "networkPassphrase": passphrase,
	}, "", "  ")
	tmp := path + ".tmp"
	_ = os.WriteFile(tmp, b, 0o644)
	_ = os.Rename(tmp, path)
}

func run(c config, wait bool) {
	s, ok := c.load()
	if !ok {
		fatal("No DB schema version found, try stellar-core new-db")
	}
	var mu sync.Mutex
	started := time.Now()
	stateName := "Synced!"
	if wait {
		// --wait-for-consensus: joins only after hearing the network; modelled as a short wait.
		stateName = "Joining SCP"
		go func() {
			time.Sleep(2 * time.Second)
			mu.Lock()
			stateName = "Synced!"
			mu.Unlock()
		}()
	}
	closeEvery := 5 * time.Second
	checkpoint := 64
	if c.accelerate {
		closeEvery, checkpoint = time.Second, 8
	}
	lastClose := time.Now()
	// stellar-core shuts down cleanly on SIGTERM/SIGINT (docker stop); so does the double.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		mu.Lock()
		c.save(s)
		os.Exit(0)
	}()
	go func() {
		for range time.Tick(closeEvery) {
			mu.Lock()
			if stateName == "Synced!" {
				s = state{Ledger: s.Ledger + 1, Hash: hashOf(c.passphrase, s.Ledger+1, s.Hash)}
				lastClose = time.Now()
				c.save(s)
				if (s.Ledger+1)%checkpoint == 0 {
					writeHAS(filepath.Join(c.archive, ".well-known", "stellar-history.json"), s.Ledger, c.passphrase)
				}
			}
			mu.Unlock()
		}
	}()
	// The overlay port: accepts and closes (no peering in the double).
	if l, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", c.peerPort)); err == nil {
		go func() {
			for {
				conn, err := l.Accept()
				if err == nil {
					conn.Close()
				}
			}
		}()
	} else {
		fatal("could not listen on peer port %d: %v", c.peerPort, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		writeJSON(w, map[string]any{"info": map[string]any{
			"build": version, "protocol_version": protocol, "state": stateName, "network": c.passphrase,
			"startedOn": started.UTC().Format(time.RFC3339),
			"ledger": map[string]any{"num": s.Ledger, "hash": s.Hash, "closeTime": lastClose.Unix(),
				"version": 0, "baseFee": 100, "baseReserve": 100000000, "maxTxSetSize": 100,
				"age": int(time.Since(lastClose).Seconds())},
			"peers": map[string]any{"authenticated_count": len(c.validators), "pending_count": 0},
			// Every key the reference info-synced.json has: SDF's exporter reads them all.
			"quorum": map[string]any{"node": "SELF", "qset": map[string]any{"agree": len(c.validators) + 1,
				"missing": 0, "disagree": 0, "delayed": 0, "fail_at": len(c.validators), "phase": "EXTERNALIZE",
				"validated": true, "cost": 0, "hash": "000000", "lag_ms": 0, "ledger": s.Ledger},
				"transitive": map[string]any{"intersection": true, "node_count": len(c.validators) + 1,
					"critical": nil, "last_check_ledger": 2}},
		}})
	})
	mux.HandleFunc("/quorum", func(w http.ResponseWriter, r *http.Request) {
		members := append([]string{"SELF"}, c.validators...)
		threshold := (len(members)*51-1)/100 + 1
		writeJSON(w, map[string]any{"node": "SELF", "qset": map[string]any{
			"agree": members, "fail_at": len(members) - threshold + 1, "ledger": s.Ledger,
			"value": map[string]any{"t": threshold, "v": members}},
			"transitive": map[string]any{"intersection": true, "node_count": len(members)}})
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(metricsBody)
	})
	// Unknown commands (getcursors among them here): the reference's unknown-command.txt, verbatim.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, unknownCommand)
	})
	// PUBLIC_HTTP_PORT=false: the admin port binds loopback only, as stellar-core does.
	if err := http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", c.httpPort), mux); err != nil {
		fatal("http: %v", err)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// horizon serves /, /ledgers from the first history archive's checkpoint, after checking that
// its database URL points at a PostgreSQL that accepts TCP connections.
func horizon() {
	dbURL, err := url.Parse(os.Getenv("DATABASE_URL"))
	if err != nil || dbURL.Host == "" {
		fatal("DATABASE_URL missing or malformed")
	}
	for i := 0; ; i++ {
		conn, err := net.DialTimeout("tcp", dbURL.Host, 2*time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if i > 30 {
			fatal("cannot reach the database at %s: %v", dbURL.Host, err)
		}
		time.Sleep(time.Second)
	}
	archives := strings.Split(os.Getenv("HISTORY_ARCHIVE_URLS"), ",")
	latest := func() int {
		client := http.Client{Timeout: 2 * time.Second}
		resp, err := client.Get(strings.TrimRight(archives[0], "/") + "/.well-known/stellar-history.json")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var has struct {
			CurrentLedger int `json:"currentLedger"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&has)
		return has.CurrentLedger
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ledgers", func(w http.ResponseWriter, r *http.Request) {
		records := []map[string]any{}
		if n := latest(); n > 0 {
			records = append(records, map[string]any{"sequence": n, "protocol_version": 0, "max_tx_set_size": 100,
				"paging_token": strconv.FormatInt(int64(n)<<32, 10),
				"closed_at":    time.Now().UTC().Format("2006-01-02T15:04:05Z")})
		}
		writeJSON(w, map[string]any{"_embedded": map[string]any{"records": records}})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n := latest()
		writeJSON(w, map[string]any{"horizon_version": horizonVersion, "history_latest_ledger": n,
			"ingest_latest_ledger": n, "core_latest_ledger": n,
			"network_passphrase": os.Getenv("NETWORK_PASSPHRASE")})
	})
	port := os.Getenv("PORT")
	if err := http.ListenAndServe("0.0.0.0:"+port, mux); err != nil {
		fatal("http: %v", err)
	}
}
