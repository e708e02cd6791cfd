// The option table (daemon/options.h) against what is built from it: the
// parsers of the command line and the --config file, --help, the reload's
// plan, and docs/design/options.md.
#include "daemon/options.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "fakes/temp_dir.h"

namespace wtd {
namespace {

const char* FakeEnv(const char* name) { return std::string(name) == "HOME" ? "/home/u" : nullptr; }

std::string Dashed(const OptionDef& o) { return "--" + o.name; }

// Lower-case words joined by dashes.
bool IsPlainName(const std::string& name) {
  if (name.empty() || name.front() == '-' || name.back() == '-') return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; });
}

class OptionsTest : public ::testing::Test {
 protected:
  // Parses `args` (after argv[0]) with `file` as the --config file when it
  // is not empty.
  Result<ParsedArgs> Parse(std::vector<std::string> args, const std::string& file = "") {
    if (!file.empty()) {
      std::string path = dir_.Sub("wtd-" + std::to_string(++files_) + ".ini");
      std::ofstream(path) << file;
      args.insert(args.begin(), {"--config", path});
    }
    args.insert(args.begin(), "wtd");
    return ParseArgs(args, FakeEnv, "/work/repo");
  }
  Config Defaults() {
    Result<ParsedArgs> p = Parse({});
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? p->config : Config{};
  }
  // The option `o` set to `values`: on the command line, or as file lines.
  static std::vector<std::string> Args(const OptionDef& o, const std::vector<std::string>& values) {
    if (o.kind == OptionKind::kSwitch) {
      return values.at(0) == "true" ? std::vector<std::string>{Dashed(o)}
                                    : std::vector<std::string>{};
    }
    std::vector<std::string> args;
    for (const std::string& v : values) {
      if (o.kind != OptionKind::kList || args.empty() || !o.multitoken) args.push_back(Dashed(o));
      args.push_back(v);
    }
    return args;
  }
  static std::string Lines(const OptionDef& o, const std::vector<std::string>& values) {
    std::string out;
    for (const std::string& v : values) out += o.name + " = " + v + "\n";
    return out;
  }
  // The values of a shown list option.
  static std::vector<std::string> Split(const std::string& shown) {
    std::istringstream in(shown);
    std::vector<std::string> out;
    for (std::string w; in >> w;) out.push_back(w);
    return out;
  }
  // A valid value other than the default, for every option a file may set.
  static std::vector<std::string> Sample(const OptionDef& o, const Config& defaults) {
    std::string d = o.show(defaults);
    switch (o.kind) {
      case OptionKind::kSwitch:
        return {d == "true" ? "false" : "true"};
      case OptionKind::kInt:
      case OptionKind::kNumber:
        return {std::to_string(std::to_string(o.min) == d ? o.max : o.min)};
      case OptionKind::kList:
        if (o.name == "worktrees") return {"/w/one", "/w/two"};
        return {"/r/one", "/r/two"};
      case OptionKind::kText:
        break;
    }
    for (const std::string& c : o.choices) {
      if (c != d) return {c};
    }
    if (o.name == "jobs-root") return {"ci/jobs"};
    if (o.name == "locks-root") return {"refs/other/locks"};
    if (o.name == "notes-ref") return {"refs/notes/other"};
    if (o.name == "metrics-listen") return {"127.0.0.1:9100"};
    return {"/x/" + o.name};
  }
  // Other options' values that a sample may need: the backoff's cap must not
  // be below its base.
  static std::vector<std::string> Companions(const OptionDef& o) {
    if (o.name == "backoff-ms") return {"--max-backoff-ms", std::to_string(o.max)};
    if (o.name == "max-backoff-ms") return {"--backoff-ms", "1"};
    return {};
  }

  TempDir dir_;
  int files_ = 0;
};

TEST_F(OptionsTest, EveryOptionIsDefinedOnceWithHelpAndItsParts) {
  std::set<std::string> names;
  for (const OptionDef& o : AllOptions()) {
    SCOPED_TRACE(o.name);
    EXPECT_TRUE(names.insert(o.name).second) << "defined twice";
    EXPECT_TRUE(IsPlainName(o.name)) << "not a plain name";
    EXPECT_FALSE(o.help.empty());
    EXPECT_TRUE(o.set && o.show && o.keep);
    if (o.kind == OptionKind::kInt || o.kind == OptionKind::kNumber) {
      EXPECT_LT(o.min, o.max);
    }
    if (o.kind != OptionKind::kList) {
      EXPECT_FALSE(o.multitoken);
    }
    EXPECT_EQ(FindOption(o.name), &o);
  }
  EXPECT_EQ(FindOption("no-such-option"), nullptr);
  // Only these need a restart (docs/design/options.md says why).
  std::set<std::string> restart;
  for (const OptionDef& o : AllOptions()) {
    if (!o.command_line_only && o.reload == Reload::kNeedsRestart) restart.insert(o.name);
  }
  EXPECT_EQ(restart, (std::set<std::string>{"state-dir", "socket", "pid-file", "daemonize",
                                            "exec-shim", "locks", "locks-root", "notes-ref",
                                            "lease-ttl-s", "lock-grace-s", "worktree-slots",
                                            "keep-failed", "idem-retention-h", "metrics-listen"}));
}

TEST_F(OptionsTest, EveryDefaultParsesAndValidatesOnTheCommandLineAndInTheFile) {
  Config defaults = Defaults();
  for (const OptionDef& o : AllOptions()) {
    if (o.command_line_only) continue;
    SCOPED_TRACE(o.name);
    std::string shown = o.show(defaults);
    std::vector<std::string> values =
        o.kind == OptionKind::kList ? Split(shown) : std::vector<std::string>{shown};
    Result<ParsedArgs> cli = Parse(Args(o, values));
    ASSERT_TRUE(cli.ok()) << cli.status().ToString();
    EXPECT_EQ(o.show(cli->config), shown);
    Result<ParsedArgs> file = Parse({}, Lines(o, values));
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_EQ(o.show(file->config), shown);
  }
}

TEST_F(OptionsTest, TheFileAndTheCommandLineAgreeAndTheCommandLineWins) {
  Config defaults = Defaults();
  for (const OptionDef& o : AllOptions()) {
    if (o.command_line_only) continue;
    SCOPED_TRACE(o.name);
    std::vector<std::string> sample = Sample(o, defaults);
    std::vector<std::string> extra = Companions(o);
    std::string extra_lines = extra.empty() ? "" : extra[0].substr(2) + " = " + extra[1] + "\n";
    std::vector<std::string> args = Args(o, sample);
    args.insert(args.end(), extra.begin(), extra.end());
    Result<ParsedArgs> cli = Parse(args);
    ASSERT_TRUE(cli.ok()) << cli.status().ToString();
    Result<ParsedArgs> file = Parse({}, Lines(o, sample) + extra_lines);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_NE(o.show(cli->config), o.show(defaults)) << "the sample is the default";
    for (const OptionDef& each : AllOptions()) {
      if (each.command_line_only) continue;  // --config: only the file's run has one
      EXPECT_EQ(each.show(cli->config), each.show(file->config)) << "--" << each.name;
    }
    if (o.kind == OptionKind::kSwitch) continue;  // a switch given once cannot be given "less"
    // The file says the sample, the command line the default: the default.
    std::string shown = o.show(defaults);
    std::vector<std::string> def =
        o.kind == OptionKind::kList ? Split(shown) : std::vector<std::string>{shown};
    std::vector<std::string> wins = Args(o, def);
    wins.insert(wins.end(), extra.begin(), extra.end());
    Result<ParsedArgs> both = Parse(wins, Lines(o, sample));
    ASSERT_TRUE(both.ok()) << both.status().ToString();
    EXPECT_EQ(o.show(both->config), shown);
  }
}

TEST_F(OptionsTest, BadValuesAreRefusedNamingTheOptionAndTheValue) {
  for (const OptionDef& o : AllOptions()) {
    if (o.command_line_only) continue;
    SCOPED_TRACE(o.name);
    std::vector<std::pair<std::string, std::string>> bad;  // value, what the error shows
    if (o.kind == OptionKind::kInt) {
      bad = {{"x12", "x12"},
             {"12x", "12x"},
             {"1.5", "1.5"},
             {std::to_string(o.min - 1), std::to_string(o.min - 1)},
             {std::to_string(o.max + 1), std::to_string(o.max + 1)}};
      for (int64_t edge : {o.min, o.max}) {
        std::vector<std::string> args = {Dashed(o), std::to_string(edge)};
        std::vector<std::string> extra = Companions(o);
        args.insert(args.end(), extra.begin(), extra.end());
        Result<ParsedArgs> p = Parse(args);
        EXPECT_TRUE(p.ok()) << edge << ": " << p.status().ToString();
      }
    } else if (o.kind == OptionKind::kNumber) {
      bad = {{"x12", "x12"},
             {"12x", "12x"},
             {"nan", "nan"},
             {"inf", "inf"},
             {"1e999", "1e999"},
             {std::to_string(o.min - 1), std::to_string(o.min - 1)},
             {std::to_string(o.max + 1), std::to_string(o.max + 1)}};
      for (const std::string& good : {std::to_string(o.min), std::to_string(o.max),
                                      std::string("0.5"), std::string("2e-05")}) {
        Result<ParsedArgs> p = Parse({Dashed(o), good});
        ASSERT_TRUE(p.ok()) << good << ": " << p.status().ToString();
        EXPECT_EQ(std::stod(o.show(p->config)), std::stod(good)) << "shown as it was given";
      }
    } else if (!o.choices.empty()) {
      bad = {{"bogus", "bogus"}};
      for (const std::string& c : o.choices) {
        EXPECT_TRUE(Parse({Dashed(o), c}).ok()) << c;
      }
    } else {
      continue;  // paths and lists: below
    }
    for (const auto& [value, shown] : bad) {
      std::string want = Dashed(o) + "=" + shown + ":";
      Result<ParsedArgs> cli = Parse({Dashed(o) + "=" + value});
      ASSERT_FALSE(cli.ok()) << value;
      EXPECT_TRUE(cli.status().IsInvalidArgument());
      EXPECT_NE(cli.status().message().find(want), std::string::npos) << cli.status().message();
      Result<ParsedArgs> file = Parse({}, o.name + " = " + value + "\n");
      ASSERT_FALSE(file.ok()) << value;
      EXPECT_NE(file.status().message().find(want), std::string::npos) << file.status().message();
      EXPECT_NE(file.status().message().find(".ini)"), std::string::npos)
          << "names the file: " << file.status().message();
      if (!o.choices.empty()) {
        for (const std::string& c : o.choices) {
          EXPECT_NE(cli.status().message().find(c), std::string::npos) << cli.status().message();
        }
      }
    }
  }
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  } cases[] = {
      {{"--jobs-root", "../up"}, "--jobs-root=../up:"},
      {{"--jobs-root", "/"}, "--jobs-root=/:"},
      {{"--repo", ""}, "--repo=:"},
      {{"--worktrees", "/a", "all"}, "--worktrees=all:"},
      {{"--backoff-ms", "2000", "--max-backoff-ms", "1999"}, "--max-backoff-ms=1999:"},
      {{"--state-dir", std::string(120, 'd')}, "--socket="},
  };
  for (const Case& c : cases) {
    Result<ParsedArgs> p = Parse(c.args);
    ASSERT_FALSE(p.ok()) << c.expect;
    EXPECT_NE(p.status().message().find(c.expect), std::string::npos) << p.status().message();
  }
}

TEST_F(OptionsTest, CommandLineOnlyOptionsAreRefusedInTheFile) {
  for (const char* line : {"help = 1\n", "version = 1\n", "config = /etc/other.ini\n"}) {
    Result<ParsedArgs> p = Parse({}, line);
    ASSERT_FALSE(p.ok()) << line;
    EXPECT_NE(p.status().message().find(".ini)"), std::string::npos) << p.status().message();
  }
}

// --help's entry of each option: its lines, joined, spaces collapsed. An
// entry starts "  --name" or "  -h [ --name ]"; its next lines are indented.
std::map<std::string, std::string> HelpEntries(const std::string& help) {
  std::map<std::string, std::string> entries;
  std::string current;
  std::istringstream in(help);
  for (std::string line; std::getline(in, line);) {
    size_t dashes = line.find("--");
    bool starts = line.rfind("  --", 0) == 0 || (line.rfind("  -", 0) == 0 && dashes == 7);
    if (starts && dashes != std::string::npos) {
      size_t end = line.find_first_of(" ]", dashes);
      current = line.substr(dashes + 2, end - dashes - 2);
      entries[current] = line.substr(end);
    } else if (!current.empty() && line.rfind("    ", 0) == 0) {
      entries[current] += " " + line;
    } else {
      current.clear();
    }
  }
  for (auto& [name, text] : entries) {
    std::istringstream words(text);
    std::string collapsed;
    for (std::string w; words >> w;) collapsed += " " + w;
    text = collapsed;
  }
  return entries;
}

TEST_F(OptionsTest, HelpListsEveryOptionWithItsDefaultAndWhetherReloadApplies) {
  Result<ParsedArgs> p = Parse({"--help"});
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->show_help);
  std::map<std::string, std::string> entries = HelpEntries(p->help_text);
  Config defaults = Defaults();
  EXPECT_EQ(entries.size(), AllOptions().size());
  for (const OptionDef& o : AllOptions()) {
    SCOPED_TRACE(o.name);
    ASSERT_TRUE(entries.count(o.name)) << p->help_text;
    const std::string& entry = entries[o.name];
    EXPECT_NE(entry.find(o.help), std::string::npos) << entry;
    if (o.command_line_only) {
      EXPECT_EQ(entry.find("[reload:"), std::string::npos) << entry;
      continue;
    }
    std::string reload = "[reload: " + std::string(ReloadName(o.reload)) + "]";
    EXPECT_NE(entry.find(reload), std::string::npos) << entry;
    if (o.shows_default) {
      EXPECT_NE(entry.find("(=" + o.show(defaults) + ")"), std::string::npos) << entry;
    }
    if (!o.default_note.empty()) {
      EXPECT_NE(entry.find("[default: " + o.default_note + "]"), std::string::npos) << entry;
    }
    EXPECT_TRUE(o.shows_default || !o.default_note.empty() || o.kind == OptionKind::kList ||
                o.kind == OptionKind::kSwitch)
        << "--help says nothing of its default";
    if (o.kind == OptionKind::kList && o.default_note.empty()) {
      EXPECT_NE(entry.find("[default: " + o.show(defaults) + "]"), std::string::npos) << entry;
    }
  }
}

// docs/design/options.md's table: | `--name` | default | reload | meaning |
TEST_F(OptionsTest, TheDesignDocListsEveryOptionAsTheTableDefinesIt) {
  std::ifstream in(std::string(WTD_SOURCE_DIR) + "/docs/design/options.md");
  ASSERT_TRUE(in) << "docs/design/options.md is missing";
  std::map<std::string, std::pair<std::string, std::string>> documented;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| `--", 0) != 0) continue;
    std::vector<std::string> cells;  // between the bars, trimmed
    for (size_t at = 1, bar; (bar = line.find('|', at)) != std::string::npos; at = bar + 1) {
      std::string cell = line.substr(at, bar - at);
      cell.erase(0, cell.find_first_not_of(' '));
      cell.erase(cell.find_last_not_of(' ') + 1);
      cells.push_back(cell);
    }
    ASSERT_GE(cells.size(), 3u) << line;
    std::string name = cells[0].substr(3, cells[0].size() - 4);  // `--name`
    documented[name] = {cells[1], cells[2]};
  }
  Config defaults = Defaults();
  std::set<std::string> defined;
  for (const OptionDef& o : AllOptions()) {
    if (o.command_line_only) continue;
    SCOPED_TRACE(o.name);
    defined.insert(o.name);
    ASSERT_TRUE(documented.count(o.name)) << "no row for --" << o.name;
    const auto& [default_text, reload] = documented[o.name];
    EXPECT_EQ(reload, ReloadName(o.reload));
    if (o.shows_default) {
      std::string want = o.name == "concurrency" ? "number of cores" : o.show(defaults);
      EXPECT_NE(default_text.find(want), std::string::npos) << default_text;
    }
  }
  for (const auto& [name, row] : documented) {
    EXPECT_TRUE(defined.count(name))
        << "docs/design/options.md lists --" << name << ", which is not an option the file may set";
  }
}

}  // namespace
}  // namespace wtd
