#include "store/keys.h"

namespace wtd {

std::string EncodeU64Key(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i) {
    out[static_cast<size_t>(i)] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  return out;
}

Result<uint64_t> DecodeU64Key(std::string_view key) {
  if (key.size() != 8) {
    return Status::Corruption("numeric key of " + std::to_string(key.size()) + " bytes");
  }
  uint64_t v = 0;
  for (char c : key) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

namespace {

std::string Join(std::initializer_list<std::string_view> parts) {
  std::string out;
  bool first = true;
  for (std::string_view p : parts) {
    if (!first) out.push_back('\0');
    out.append(p);
    first = false;
  }
  return out;
}

}  // namespace

std::vector<std::string_view> SplitKey(std::string_view key) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t nul = key.find('\0', start);
    if (nul == std::string_view::npos) {
      parts.push_back(key.substr(start));
      return parts;
    }
    parts.push_back(key.substr(start, nul - start));
    start = nul + 1;
  }
}

std::string EncodeRunKey(const RunKey& k) {
  // Series 0 keeps the four-part key every run had before series existed.
  if (k.series == 0) return Join({k.repo, k.worktree, k.job, k.sha});
  return Join({k.repo, k.worktree, k.job, k.sha, std::to_string(k.series)});
}

Result<RunKey> DecodeRunKey(std::string_view key) {
  std::vector<std::string_view> parts = SplitKey(key);
  if (parts.size() != 4 && parts.size() != 5)
    return Status::Corruption("run key with " + std::to_string(parts.size()) + " parts");
  RunKey k{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]),
           std::string(parts[3])};
  if (parts.size() == 5) {
    // Decimal, no sign, no leading zero, at least 1: series 0 has no part.
    std::string_view s = parts[4];
    uint64_t v = 0;
    bool ok = !s.empty() && s.size() <= 10 && s[0] != '0';
    for (char c : s) {
      if (c < '0' || c > '9') ok = false;
      if (ok) v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok || v > UINT32_MAX) {
      return Status::Corruption("run key series '" + std::string(s) + "' is not a number >= 1");
    }
    k.series = static_cast<uint32_t>(v);
  }
  return k;
}

std::string EncodeCursorKey(std::string_view repo, std::string_view worktree,
                            std::string_view branch) {
  return Join({repo, worktree, branch});
}

std::string CursorKeyPrefix(std::string_view repo, std::string_view worktree) {
  return Join({repo, worktree, ""});
}

std::string CursorRepoPrefix(std::string_view repo) { return Join({repo, ""}); }

std::string LockName(const RunKey& k) { return k.worktree + "/" + k.job + "/" + k.sha; }

std::string EncodeLeaseKey(std::string_view repo, std::string_view name) {
  return Join({repo, name});
}

Status CheckKeyPart(std::string_view what, std::string_view part) {
  if (part.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  if (part.find('\0') != std::string_view::npos) {
    return Status::InvalidArgument(std::string(what) + " contains a NUL byte");
  }
  return Status::OK();
}

}  // namespace wtd
