// docs/grafana-dashboard.json: valid JSON that imports with its data source
// as the input DS_PROMETHEUS, and every query names only metrics the daemon
// exports, read from the daemon's own registry's rendered text.
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "daemon/metrics.h"
#include "gtest/gtest.h"

namespace wtd {
namespace {

using json = nlohmann::json;

// Every series name the daemon's registry can render: each family of its
// `# TYPE` lines, with _bucket, _sum and _count for a histogram.
std::set<std::string> ExportedNames() {
  DaemonMetrics m;
  std::istringstream in(m.registry()->Render());
  std::set<std::string> names;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) != 0) continue;
    std::istringstream words(line.substr(7));
    std::string name, type;
    words >> name >> type;
    names.insert(name);
    if (type == "histogram") {
      for (const char* s : {"_bucket", "_sum", "_count"}) names.insert(name + s);
    }
  }
  return names;
}

// The wtd_ metric names in a PromQL expression.
std::set<std::string> NamesIn(const std::string& expr) {
  static const std::regex kName("\\bwtd_[a-zA-Z0-9_:]*");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), kName);
       it != std::sregex_iterator(); ++it) {
    out.insert(it->str());
  }
  return out;
}

json Dashboard() {
  std::ifstream in(std::string(WTD_SOURCE_DIR) + "/docs/grafana-dashboard.json");
  EXPECT_TRUE(in.good()) << "docs/grafana-dashboard.json is missing";
  return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

TEST(DashboardTest, ParsesAndTakesItsDataSourceAsAnInput) {
  json d = Dashboard();
  ASSERT_FALSE(d.is_discarded()) << "not valid JSON";
  ASSERT_TRUE(d.contains("__inputs"));
  bool found = false;
  for (const json& in : d["__inputs"]) {
    if (in.value("name", "") == "DS_PROMETHEUS") {
      found = true;
      EXPECT_EQ(in.value("type", ""), "datasource");
      EXPECT_EQ(in.value("pluginId", ""), "prometheus");
    }
  }
  EXPECT_TRUE(found) << "no __inputs entry DS_PROMETHEUS";
  EXPECT_FALSE(d.value("title", "").empty());
  EXPECT_FALSE(d.value("uid", "").empty());
  EXPECT_TRUE(d["id"].is_null()) << "an exported dashboard carries no database id";
  ASSERT_TRUE(d["panels"].is_array());
  ASSERT_FALSE(d["panels"].empty());
}

TEST(DashboardTest, EveryQueryNamesOnlyMetricsTheDaemonExports) {
  std::set<std::string> exported = ExportedNames();
  ASSERT_TRUE(exported.count("wtd_runs_total")) << "the registry rendered no families";
  json d = Dashboard();
  ASSERT_FALSE(d.is_discarded());
  std::set<std::string> used;
  std::set<std::string> types;
  for (const json& p : d["panels"]) {
    std::string title = p.value("title", "");
    SCOPED_TRACE(title);
    EXPECT_EQ(p["datasource"].value("uid", ""), "${DS_PROMETHEUS}");
    ASSERT_TRUE(p.contains("targets") && !p["targets"].empty()) << "a panel without a query";
    types.insert(p.value("type", ""));
    for (const json& t : p["targets"]) {
      std::string expr = t.value("expr", "");
      std::set<std::string> names = NamesIn(expr);
      EXPECT_FALSE(names.empty()) << "names no wtd metric: " << expr;
      for (const std::string& n : names) {
        EXPECT_TRUE(exported.count(n)) << n << " is not exported (in " << expr << ")";
        used.insert(n);
      }
      if (p.value("type", "") == "heatmap") {
        EXPECT_TRUE(names.count("wtd_run_duration_seconds_bucket")) << expr;
      }
    }
  }
  for (const json& v : d["templating"]["list"]) {
    for (const std::string& n : NamesIn(v.value("definition", ""))) {
      EXPECT_TRUE(exported.count(n)) << n << " (variable " << v.value("name", "") << ")";
    }
  }
  // The panels the operations guide promises.
  for (const char* want : {"wtd_runs_total", "wtd_run_duration_seconds_bucket", "wtd_queue_depth",
                           "wtd_poll_tick_seconds_bucket"}) {
    EXPECT_TRUE(used.count(want)) << "no panel shows " << want;
  }
  EXPECT_TRUE(types.count("heatmap"));
}

}  // namespace
}  // namespace wtd
