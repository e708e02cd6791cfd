// ParseJobSpec: the line-based job-file reader and the validation of each key.

#include "jobs/job_spec.h"

#include <cctype>
#include <charconv>
#include <map>
#include <string>
#include <string_view>

#include "jobs/message_regex.h"

namespace wtd {
namespace {

constexpr std::string_view kBlanks = " \t\r\f\v";

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(kBlanks);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(kBlanks);
  return s.substr(b, e - b + 1);
}

std::vector<std::string> SplitWords(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while ((i = s.find_first_not_of(kBlanks, i)) != std::string_view::npos) {
    size_t e = s.find_first_of(kBlanks, i);
    if (e == std::string_view::npos) e = s.size();
    out.emplace_back(s.substr(i, e - i));
    i = e;
  }
  return out;
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

bool IsJobName(std::string_view name) {
  if (name.empty() || name[0] == '.') return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

// `s` cut at `max` bytes, with control bytes written as \xNN, for error
// messages that end up in logs and terminals.
std::string Escape(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

// Shows a user-supplied value in an error message: quoted, cut at 64 bytes.
std::string Quote(std::string_view s) { return "\"" + Escape(s, 64) + "\""; }

// Parser state for one file: the spec being filled and where we are.
class Parser {
 public:
  Parser(const std::string& file, std::string_view content) : file_(file), content_(content) {}

  Result<JobSpec> Parse();

 private:
  Status Error(size_t line, std::string_view key, std::string_view what) const {
    return Status::InvalidArgument(Escape(file_, 4096) + ":" + std::to_string(line) + ": " +
                                   Escape(key, 64) + ": " + std::string(what));
  }
  Status CheckFile();
  Status ParseLine(size_t line_no, std::string_view line);
  Status SetKey(size_t line_no, std::string_view key, std::string_view value);
  Status ParseInt(size_t line_no, std::string_view key, std::string_view value, int64_t lo,
                  int64_t hi, int64_t* out) const;
  Status CheckRegex(size_t line_no, const std::string& re) const;

  const std::string& file_;
  std::string_view content_;
  JobSpec spec_;
  bool seen_key_or_section_ = false;
  std::map<std::string, size_t, std::less<>> seen_;  // key -> line first set
};

Status Parser::CheckFile() {
  if (content_.size() > kMaxJobFileBytes) {
    return Error(0, "-",
                 "file is " + std::to_string(content_.size()) + " bytes, more than the limit of " +
                     std::to_string(kMaxJobFileBytes));
  }
  std::string_view base = file_;
  if (size_t slash = base.rfind('/'); slash != std::string_view::npos)
    base.remove_prefix(slash + 1);
  constexpr std::string_view kExt = ".job";
  if (base.size() < kExt.size() || base.substr(base.size() - kExt.size()) != kExt) {
    return Error(0, "-", "job file name " + Quote(base) + " does not end in \".job\"");
  }
  base.remove_suffix(kExt.size());
  if (!IsJobName(base)) {
    return Error(0, "-",
                 "job name " + Quote(base) + " must match [A-Za-z0-9._-]+ and not start with '.'");
  }
  spec_.name = std::string(base);
  spec_.file = file_;
  return Status::OK();
}

Result<JobSpec> Parser::Parse() {
  WTD_RETURN_IF_ERROR(CheckFile());
  std::string_view rest = content_;
  if (rest.substr(0, 3) == "\xEF\xBB\xBF") rest.remove_prefix(3);  // UTF-8 BOM
  for (size_t line_no = 1; !rest.empty(); ++line_no) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.find('\0') != std::string_view::npos) {
      return Error(line_no, "-", "line contains a NUL byte");
    }
    WTD_RETURN_IF_ERROR(ParseLine(line_no, Trim(line)));
  }
  if (spec_.run.empty()) return Error(0, "run", "required key missing");
  return std::move(spec_);
}

Status Parser::ParseLine(size_t line_no, std::string_view line) {
  if (line.empty() || line[0] == '#' || line[0] == ';') return Status::OK();
  if (line[0] == '[') {
    if (line.back() != ']') return Error(line_no, "-", "unterminated section header");
    std::string_view name = Trim(line.substr(1, line.size() - 2));
    if (name != "job") {
      return Error(line_no, "-", "unknown section [" + std::string(name) + "] (only [job])");
    }
    if (seen_key_or_section_) {
      return Error(line_no, "-", "section [job] may appear only once, before any key");
    }
    seen_key_or_section_ = true;
    return Status::OK();
  }
  seen_key_or_section_ = true;
  size_t eq = line.find('=');
  if (eq == std::string_view::npos) {
    return Error(line_no, "-", "expected \"key = value\", got " + Quote(line));
  }
  std::string_view key = Trim(line.substr(0, eq));
  std::string_view value = Trim(line.substr(eq + 1));
  if (key.empty()) return Error(line_no, "-", "empty key before '='");
  auto [it, inserted] = seen_.emplace(std::string(key), line_no);
  if (!inserted) {
    return Error(line_no, key,
                 "duplicate key (first set on line " + std::to_string(it->second) + ")");
  }
  return SetKey(line_no, key, value);
}

Status Parser::SetKey(size_t line_no, std::string_view key, std::string_view value) {
  if (key == "run") {
    if (value.empty()) return Error(line_no, key, "must not be empty");
    spec_.run = std::string(value);
  } else if (key == "branches" || key == "paths") {
    std::vector<std::string> globs = SplitWords(value);
    if (globs.empty()) return Error(line_no, key, "needs at least one pattern");
    (key == "branches" ? spec_.branches : spec_.paths) = std::move(globs);
  } else if (key == "message") {
    spec_.message = std::string(value);
    if (!spec_.message.empty()) WTD_RETURN_IF_ERROR(CheckRegex(line_no, spec_.message));
  } else if (key == "timeout_s") {
    return ParseInt(line_no, key, value, kMinTimeoutS, kMaxTimeoutS, &spec_.timeout_s);
  } else if (key == "retry_backoff_s") {
    return ParseInt(line_no, key, value, kMinBackoffS, kMaxBackoffS, &spec_.retry_backoff_s);
  } else if (key == "max_attempts") {
    int64_t n = 0;
    WTD_RETURN_IF_ERROR(ParseInt(line_no, key, value, kMinAttempts, kMaxAttempts, &n));
    spec_.max_attempts = static_cast<uint32_t>(n);
  } else if (key == "isolation") {
    if (value != "commit" && value != "inplace") {
      return Error(line_no, key, "expected commit or inplace, got " + Quote(value));
    }
    spec_.inplace = value == "inplace";
  } else if (key == "keep_worktree") {
    if (value != "never" && value != "on_failure") {
      return Error(line_no, key, "expected never or on_failure, got " + Quote(value));
    }
    spec_.keep_on_failure = value == "on_failure";
  } else if (key.substr(0, 4) == "env.") {
    std::string_view name = key.substr(4);
    if (!IsEnvName(name)) {
      return Error(line_no, key, "environment variable name must match [A-Za-z_][A-Za-z0-9_]*");
    }
    if (name.substr(0, 4) == "WTD_") {
      return Error(line_no, key, "the WTD_ prefix is reserved for variables wtd sets");
    }
    spec_.env.emplace_back(std::string(name), std::string(value));
  } else {
    return Error(line_no, key, "unknown key");
  }
  return Status::OK();
}

Status Parser::ParseInt(size_t line_no, std::string_view key, std::string_view value, int64_t lo,
                        int64_t hi, int64_t* out) const {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  int64_t n = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (ec == std::errc::invalid_argument || value.empty()) {
    return Error(line_no, key, Quote(value) + " is not an integer");
  }
  if (ec == std::errc::result_out_of_range) {
    return Error(line_no, key, Quote(value) + " is out of range " + range);
  }
  if (end != value.data() + value.size()) {
    return Error(line_no, key, Quote(value) + " has trailing characters after the integer");
  }
  if (n < lo || n > hi) return Error(line_no, key, Quote(value) + " is out of range " + range);
  *out = n;
  return Status::OK();
}

Status Parser::CheckRegex(size_t line_no, const std::string& re) const {
  std::string problem = MessageRegexProblem(re);
  if (problem.empty()) return Status::OK();
  return Error(line_no, "message", problem);
}

}  // namespace

Result<JobSpec> ParseJobSpec(const std::string& file, std::string_view content) {
  return Parser(file, content).Parse();
}

}  // namespace wtd
