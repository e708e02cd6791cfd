// wtd-gen-man: writes a man page from its roff template, with the parts that
// must stay true to the code generated from the code itself: the line
// `@WTD_OPTIONS@` becomes wtd's options (the option table of
// src/daemon/options.cc, as `wtd --help` prints it), `@WTCTL_COMMANDS@`
// wtctl's commands (AllCommands(), as `wtctl --help` prints them), and
// `@WTD_VERSION@` the version. Run by the build; not installed.
//
//   wtd-gen-man TEMPLATE OUTPUT
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "commands/command.h"
#include "daemon/options.h"

namespace wtd {
namespace {

// Text as roff shows it literally: backslashes and dashes escaped, and a
// line that would start with a control character guarded.
std::string Roff(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out = "\\&" + out;
  return out;
}

// `text` as a sentence: a full stop added unless it ends with one.
std::string Sentence(const std::string& text) {
  std::string s = Roff(text);
  return !s.empty() && s.back() == '.' ? s : s + ".";
}

const char* NoEnv(const char*) { return nullptr; }

std::string Argument(const OptionDef& o) {
  switch (o.kind) {
    case OptionKind::kSwitch:
      return "";
    case OptionKind::kInt:
      return "N";
    case OptionKind::kNumber:
      return "X";
    case OptionKind::kList:
      return o.multitoken ? "VALUE..." : "PATH";
    case OptionKind::kText:
      break;
  }
  if (!o.choices.empty()) {
    std::string s;
    for (const std::string& c : o.choices) s += (s.empty() ? "" : "|") + c;
    return s;
  }
  if (o.command_line_only) return "FILE";
  return o.default_note.empty() ? "VALUE" : "PATH";
}

std::string WtdOptions() {
  Config defaults = DefaultConfig(&NoEnv, "/");
  std::ostringstream out;
  for (const OptionDef& o : AllOptions()) {
    out << ".TP\n";
    if (o.short_name != 0) out << "\\fB\\-" << o.short_name << "\\fR, ";
    out << "\\fB\\-\\-" << Roff(o.name) << "\\fR";
    std::string arg = Argument(o);
    if (!arg.empty()) out << " \\fI" << Roff(arg) << "\\fR";
    out << "\n" << Sentence(o.help);
    if (!o.default_note.empty()) {
      out << " Default: " << Roff(o.default_note) << ".";
    } else if (o.shows_default) {
      out << " Default: " << Roff(o.show(defaults)) << ".";
    }
    if (!o.command_line_only) {
      out << (o.reload == Reload::kApplies ? " A reload applies a new value."
                                           : " A new value needs a restart.");
    }
    out << "\n";
  }
  return out.str();
}

std::string WtctlCommands() {
  std::ostringstream out;
  for (const CommandDef& c : AllCommands()) {
    out << ".TP\n\\fB" << Roff(std::string(c.usage)) << "\\fR\n"
        << Sentence(std::string(c.summary))
        << (c.access == Access::kReadOnly
                ? " Works with the daemon stopped: read from the state store."
                : " Needs the running daemon.")
        << "\n";
  }
  return out.str();
}

int Main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: wtd-gen-man TEMPLATE OUTPUT\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  if (!in) {
    std::cerr << "wtd-gen-man: cannot read " << argv[1] << "\n";
    return 1;
  }
  std::ostringstream page;
  std::string line;
  while (std::getline(in, line)) {
    if (line == "@WTD_OPTIONS@") {
      page << WtdOptions();
      continue;
    }
    if (line == "@WTCTL_COMMANDS@") {
      page << WtctlCommands();
      continue;
    }
    for (size_t at; (at = line.find("@WTD_VERSION@")) != std::string::npos;) {
      line.replace(at, 13, WTD_VERSION);
    }
    page << line << "\n";
  }
  std::ofstream out(argv[2], std::ios::trunc);
  out << page.str();
  out.close();
  if (!out) {
    std::cerr << "wtd-gen-man: cannot write " << argv[2] << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) { return wtd::Main(argc, argv); }
