// The real wtd with --metrics-listen: its endpoint scraped over TCP while
// jobs run, every line of the text parsed and checked against the runs made;
// promtool's own check when it is installed; a port in use stops the start.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>

#include "integration/fixture.h"

namespace wtd::itest {
namespace {

// One sample line: name{labels} value.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Scrape {
  std::map<std::string, std::string> types;  // family -> counter|gauge|histogram
  std::vector<Sample> samples;
  std::string text;
};

// Parses the exposition text; a line that does not parse fails the test.
Scrape Parse(const std::string& text) {
  Scrape s;
  s.text = text;
  for (const std::string& line : Lines(text)) {
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      EXPECT_NE(sp, std::string::npos) << line;
      if (sp == std::string::npos) continue;
      s.types[rest.substr(0, sp)] = rest.substr(sp + 1);
      continue;
    }
    EXPECT_NE(line[0], '#') << "an unknown comment: " << line;
    Sample m;
    size_t i = 0;
    while (i < line.size() &&
           (isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == ':')) {
      ++i;
    }
    m.name = line.substr(0, i);
    EXPECT_FALSE(m.name.empty()) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          ADD_FAILURE() << "a label without a value: " << line;
          return s;
        }
        std::string key = line.substr(i, eq - i);
        i = eq + 1;
        EXPECT_EQ(line[i], '"') << line;
        ++i;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\' && i + 1 < line.size()) {
            char e = line[++i];
            value += e == 'n' ? '\n' : e;
          } else {
            value += line[i];
          }
          ++i;
        }
        ++i;  // the closing quote
        m.labels[key] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // }
    }
    EXPECT_EQ(line[i], ' ') << line;
    std::string value = line.substr(i + 1);
    char* end = nullptr;
    m.value = value == "+Inf" ? INFINITY : std::strtod(value.c_str(), &end);
    if (value != "+Inf") {
      EXPECT_TRUE(end && *end == '\0') << "bad value in: " << line;
    }
    // Its family's TYPE came first.
    std::string family = m.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string sfx = suffix;
      if (family.size() > sfx.size() &&
          family.compare(family.size() - sfx.size(), sfx.size(), sfx) == 0 &&
          s.types.count(family.substr(0, family.size() - sfx.size())) &&
          s.types[family.substr(0, family.size() - sfx.size())] == "histogram") {
        family = family.substr(0, family.size() - sfx.size());
        break;
      }
    }
    EXPECT_TRUE(s.types.count(family)) << "no TYPE before " << line;
    s.samples.push_back(std::move(m));
  }
  return s;
}

// The value of the sample `name` whose labels include `labels`; nullopt
// when there is none.
std::optional<double> Value(const Scrape& s, const std::string& name,
                            const std::map<std::string, std::string>& labels = {}) {
  for (const Sample& m : s.samples) {
    if (m.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = m.labels.find(k);
      if (it == m.labels.end() || it->second != v) match = false;
    }
    if (match) return m.value;
  }
  return std::nullopt;
}

// GET /metrics from 127.0.0.1:port over a plain socket; "" on failure.
std::string HttpGet(uint16_t port, const std::string& path, std::string* head = nullptr) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: wtd\r\nConnection: close\r\n\r\n";
    if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
      for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(ScaledMs(10000))) <= 0) break;
        char buf[8192];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
      }
    }
  }
  close(fd);
  size_t body = out.find("\r\n\r\n");
  if (body == std::string::npos) return "";
  if (head) *head = out.substr(0, body);
  return out.substr(body + 4);
}

class MetricsTest : public IntegrationTest {
 protected:
  // The port wtd reports in `wtctl status --json` as metrics_listen.
  uint16_t Port() {
    std::optional<json> st = Status();
    EXPECT_TRUE(st.has_value());
    if (!st || !(*st)["metrics_listen"].is_string()) {
      ADD_FAILURE() << "no metrics_listen in status: " << (st ? st->dump() : "");
      return 0;
    }
    std::string at = (*st)["metrics_listen"];
    EXPECT_EQ(at.rfind("127.0.0.1:", 0), 0u) << at;
    return static_cast<uint16_t>(std::stoi(at.substr(at.rfind(':') + 1)));
  }
};

TEST_F(MetricsTest, ScrapedCountersMatchTheRunsMade) {
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartReady({"--metrics-listen", "127.0.0.1:0"});
  uint16_t port = Port();
  ASSERT_NE(port, 0);
  EXPECT_NE(d->Log().find("metrics endpoint: http://127.0.0.1:" + std::to_string(port)),
            std::string::npos);
  for (const char* name : {"a", "b", "c"}) repo_.Commit(std::string(name) + ".txt", name, name);
  std::vector<std::string> shas = repo_.RevList();
  ASSERT_EQ(shas.size(), 4u);
  ASSERT_NO_FATAL_FAILURE(WaitSettled(shas, "effect"));
  const double runs = static_cast<double>(shas.size());

  // The counter follows the commit of each run's end at once; poll for it
  // rather than assume the scrape comes after.
  Scrape s;
  std::string head;
  bool counted = WaitFor(
      [&] {
        s = Parse(HttpGet(port, "/metrics", &head));
        return Value(s, "wtd_runs_total", {{"job", "effect"}, {"state", "succeeded"}}) == runs;
      },
      ScaledMs(20000), 100);
  ASSERT_TRUE(counted) << s.text;
  EXPECT_NE(head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << head;

  EXPECT_EQ(s.types["wtd_runs_total"], "counter");
  EXPECT_EQ(s.types["wtd_run_duration_seconds"], "histogram");
  EXPECT_EQ(s.types["wtd_queue_depth"], "gauge");
  EXPECT_EQ(Value(s, "wtd_up"), 1.0);
  EXPECT_EQ(Value(s, "wtd_build_info", {{"version", WTD_VERSION}}), 1.0) << s.text;
  // No other terminal state for that job.
  for (const Sample& m : s.samples) {
    if (m.name == "wtd_runs_total" && m.labels.at("state") != "succeeded") {
      ADD_FAILURE() << "unexpected " << m.labels.at("state") << " " << m.value;
    }
  }
  // Histograms: buckets cumulative, +Inf equal to _count, one duration per
  // run.
  for (const std::string& h :
       {std::string("wtd_run_duration_seconds"), std::string("wtd_poll_tick_seconds"),
        std::string("wtd_store_write_seconds")}) {
    SCOPED_TRACE(h);
    double last = 0;
    std::optional<double> inf;
    for (const Sample& m : s.samples) {
      if (m.name != h + "_bucket") continue;
      EXPECT_GE(m.value, last) << "buckets are cumulative";
      last = m.value;
      if (m.labels.at("le") == "+Inf") inf = m.value;
    }
    ASSERT_TRUE(inf.has_value()) << s.text;
    EXPECT_EQ(Value(s, h + "_count"), *inf);
    EXPECT_GT(*inf, 0);
    EXPECT_GE(*Value(s, h + "_sum"), 0);
  }
  EXPECT_EQ(Value(s, "wtd_run_duration_seconds_count", {{"job", "effect"}}), runs);
  EXPECT_GE(*Value(s, "wtd_store_write_seconds_count"), 2 * runs)
      << "at least an enqueue and an end per run, each a synced batch";
  EXPECT_GE(Value(s, "wtd_commits_seen_total").value_or(0), runs);
  for (const char* state : {"queued", "retry_wait", "running"}) {
    EXPECT_TRUE(Value(s, "wtd_queue_depth", {{"state", state}}).has_value()) << state;
  }
  EXPECT_EQ(Value(s, "wtd_locks_held"), 0.0) << "every lock was released";
  EXPECT_EQ(Value(s, "wtd_lock_contention_total"), 0.0);
  EXPECT_EQ(s.types["wtd_recovery_actions_total"], "counter");

  // Another path is 404, and the daemon still answers.
  std::string nothing = HttpGet(port, "/other", &head);
  EXPECT_EQ(head.rfind("HTTP/1.1 404", 0), 0u) << head;

  // promtool's own check of the format, when it is installed.
  std::string file = dir_.Sub("scrape.txt");
  WriteFileOrDie(file, s.text);
  StopDaemon(d);
  CommandResult which = RunCommand({"sh", "-c", "command -v promtool"});
  if (which.exit_code != 0) {
    GTEST_SKIP() << "promtool is not on PATH (Debian package prometheus): the format was "
                    "checked by this test's parser only";
  }
  CommandResult check = RunCommand({"sh", "-c", "promtool check metrics < '" + file + "'"});
  EXPECT_EQ(check.exit_code, 0) << check.Describe() << "\n" << s.text;
}

TEST_F(MetricsTest, APortInUseStopsTheStartNamingTheAddress) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string at = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  repo_.CommitJob("effect", EffectJob());
  DaemonProcess* d = StartDaemon({"--metrics-listen", at});
  std::optional<int> rc = d->WaitExit(ScaledMs(30000));
  close(fd);
  ASSERT_TRUE(rc.has_value()) << "wtd kept running with its metrics port taken";
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(d->Log().find("--metrics-listen=" + at), std::string::npos) << d->Log();
  EXPECT_TRUE(Effects().empty()) << "no job ran";
}

TEST_F(MetricsTest, ABadAddressIsAUsageErrorNamingTheOption) {
  CommandResult r = RunCommand({WTD_BIN, "--repo", repo_.dir(), "--state-dir", state_dir_,
                                "--metrics-listen", "localhost:x"});
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_NE(r.err.find("--metrics-listen=localhost:x"), std::string::npos) << r.Describe();
}

}  // namespace
}  // namespace wtd::itest
