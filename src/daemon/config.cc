#include "daemon/config.h"

#include <boost/program_options.hpp>
#include <fstream>
#include <sstream>

#include "daemon/options.h"

namespace po = boost::program_options;

namespace wtd {
namespace {

enum class Source { kCommandLine, kFile, kHelp };

// The option table as Boost.Program_options sees it. Values are read as
// text and checked by the table itself, so that every error names the
// option and the value the same way. Only --help shows defaults: parsed
// from a source, an option is present only where it was given.
po::options_description Describe(Source source, const Config& defaults) {
  po::options_description d(
      "wtd options (each may also be set as `name = value` in --config FILE)");
  for (const OptionDef& o : AllOptions()) {
    if (source == Source::kFile && o.command_line_only) continue;
    std::string help = o.help;
    if (!o.default_note.empty()) {
      help += " [default: " + o.default_note + "]";
    } else if (o.kind == OptionKind::kList) {
      help += " [default: " + o.show(defaults) + "]";
    }
    if (!o.command_line_only) help += " [reload: " + std::string(ReloadName(o.reload)) + "]";
    std::string name = o.name;
    if (o.short_name != 0) name += std::string(",") + o.short_name;
    const po::value_semantic* value = nullptr;
    switch (o.kind) {
      case OptionKind::kSwitch:
        value = o.command_line_only ? nullptr : po::bool_switch();
        break;
      case OptionKind::kList: {
        auto* v = po::value<std::vector<std::string>>();
        if (o.multitoken) v->multitoken();
        value = v;
        break;
      }
      case OptionKind::kInt:
      case OptionKind::kNumber:
      case OptionKind::kText: {
        auto* v = po::value<std::string>();
        if (source == Source::kHelp && o.shows_default) v->default_value(o.show(defaults));
        value = v;
        break;
      }
    }
    if (value == nullptr) {
      d.add_options()(name.c_str(), help.c_str());
    } else {
      d.add_options()(name.c_str(), value, help.c_str());
    }
  }
  return d;
}

std::string HelpText(const Config& defaults) {
  std::ostringstream help;
  help << "Usage: wtd [options]\n\nRuns the jobs committed in a repository's jobs directory"
       << " for every new commit of its worktrees.\n\n"
       << Describe(Source::kHelp, defaults)
       << "\nA reload (SIGHUP, `wtctl reload`) reads the command line and the --config file\n"
       << "again and applies every option marked [reload: applies]. One marked\n"
       << "[reload: needs restart] keeps its running value until wtd restarts, and the\n"
       << "reload says so.\n";
  return help.str();
}

// The value(s) of `name` in `vm` if they were given there (a switch that was
// not given is present but defaulted).
std::optional<std::vector<std::string>> Given(const po::variables_map& vm, const OptionDef& o) {
  auto it = vm.find(o.name);
  if (it == vm.end() || it->second.defaulted()) return std::nullopt;
  const po::variable_value& v = it->second;
  switch (o.kind) {
    case OptionKind::kSwitch:
      return std::vector<std::string>{v.as<bool>() ? "true" : "false"};
    case OptionKind::kList:
      return v.as<std::vector<std::string>>();
    case OptionKind::kInt:
    case OptionKind::kNumber:
    case OptionKind::kText:
      break;
  }
  return std::vector<std::string>{v.as<std::string>()};
}

}  // namespace

Result<ParsedArgs> ParseArgs(const std::vector<std::string>& argv, const char* (*env)(const char*),
                             const std::string& cwd) {
  Config defaults = DefaultConfig(env, cwd);
  ParsedArgs out;
  out.help_text = HelpText(defaults);
  po::variables_map cli, file;
  std::string config_file;
  // Boost.Program_options reports errors by throwing: they end here.
  try {
    std::vector<std::string> args(argv.begin() + (argv.empty() ? 0 : 1), argv.end());
    po::store(po::command_line_parser(args).options(Describe(Source::kCommandLine, defaults)).run(),
              cli);
  } catch (const po::error& e) {
    return Status::InvalidArgument(e.what());
  }
  out.show_help = cli.count("help") > 0;
  out.show_version = cli.count("version") > 0;
  if (out.show_help || out.show_version) return out;
  Config c = defaults;
  if (cli.count("config")) {
    WTD_RETURN_IF_ERROR(FindOption("config")->set({cli["config"].as<std::string>()}, cwd, &c));
    config_file = c.daemon.config_file;
    std::ifstream in(config_file);
    if (!in) return Status::InvalidArgument("--config=" + config_file + ": cannot open the file");
    try {
      po::store(po::parse_config_file(in, Describe(Source::kFile, defaults),
                                      /*allow_unregistered=*/false),
                file);
    } catch (const po::error& e) {
      return Status::InvalidArgument(std::string(e.what()) + " (in " + config_file + ")");
    }
  }
  // The command line wins over the file, the file over the default.
  for (const OptionDef& o : AllOptions()) {
    if (o.command_line_only) continue;
    if (std::optional<std::vector<std::string>> v = Given(cli, o)) {
      WTD_RETURN_IF_ERROR(o.set(*v, cwd, &c));
    } else if (std::optional<std::vector<std::string>> f = Given(file, o)) {
      Status st = o.set(*f, cwd, &c);
      if (!st.ok()) return Status::InvalidArgument(st.message() + " (in " + config_file + ")");
    }
  }
  WTD_RETURN_IF_ERROR(FinishConfig(&c));
  out.config = std::move(c);
  return out;
}

ReloadPlan PlanReload(const Config& running, const Config& reloaded) {
  ReloadPlan plan{reloaded, {}, {}};
  for (const OptionDef& o : AllOptions()) {
    if (o.command_line_only) continue;
    OptionChange change{o.name, o.show(running), o.show(reloaded)};
    if (change.running == change.configured) continue;
    if (o.reload == Reload::kApplies) {
      plan.applied.push_back(std::move(change));
    } else {
      o.keep(running, &plan.next);
      plan.needs_restart.push_back(std::move(change));
    }
  }
  return plan;
}

}  // namespace wtd
