// Repository::WalkNew: the commits reachable from one HEAD and from none of
// a set of already-processed commits.
//
// The walk is git's own "A ^B ^C" walk (revision.c limit_list), written here
// rather than taken from git_revwalk for two reasons: libgit2 1.5 knows
// neither the shallow boundary nor missing objects (its walk fails at the
// first parent it cannot read, which stops a shallow or partial clone for
// good), and the poller needs every commit's parents to keep a durable
// frontier when it takes only part of the set.
//
// Commits are taken newest first from a queue ordered by committer time.
// Those reached from a hidden commit are marked uninteresting, and the mark
// flows to their parents, already expanded or not. The walk ends when every
// queued commit is uninteresting and has been for kSlop further steps while
// the queue holds nothing as new as the oldest commit taken: committer times
// normally fall along parent links, and the slop absorbs a few skewed ones.
// A skew larger than that can only add commits to the set (they are then
// enqueued again and found existing), never drop one.
#include <git2.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <queue>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "git/git_util.h"
#include "git/repository.h"

namespace wtd::git {
namespace {

constexpr int kSlop = 5;

// The commits listed in <commondir>/shallow: their parents are not in the
// repository and are not looked for.
std::unordered_set<std::string> ReadShallow(const std::string& common_dir) {
  std::unordered_set<std::string> out;
  std::ifstream in(common_dir + "/shallow");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() >= 40) out.insert(line.substr(0, 40));
  }
  return out;
}

class Walk {
 public:
  Walk(git_repository* repo, std::unordered_set<std::string> shallow, int64_t min_time_s)
      : repo_(repo), shallow_(std::move(shallow)), min_time_s_(min_time_s) {}

  // Adds a starting point. Returns false when `sha` names no readable commit.
  bool Start(const git_oid& oid, bool hidden) {
    int n = NodeFor(oid);
    if (n < 0) return false;
    if (hidden) MarkUninteresting(n);
    return true;
  }

  void Run() {
    while (!queue_.empty()) {
      if (interesting_queued_ == 0) {
        if (queue_.top().time >= oldest_taken_) {
          slop_ = kSlop;
        } else if (--slop_ <= 0) {
          break;
        }
      }
      int n = queue_.top().node;
      queue_.pop();
      Node& node = nodes_[n];
      node.queued = false;
      if (!node.uninteresting) {
        --interesting_queued_;
        if (min_time_s_ > 0 && node.time < min_time_s_) {
          cut_off_.push_back(node.sha);
          MarkUninteresting(n);
        } else {
          taken_.push_back(n);
          oldest_taken_ = std::min(oldest_taken_, node.time);
        }
      }
      Expand(n);
    }
  }

  NewHistory Result() {
    NewHistory out;
    out.cut_off = std::move(cut_off_);
    out.truncated = std::move(truncated_);
    out.visited = nodes_.size();
    std::vector<int> set;
    for (int n : taken_) {
      if (!nodes_[n].uninteresting) set.push_back(n);
    }
    for (int n : TopologicalOrder(set)) {
      Node& node = nodes_[n];
      out.commits.push_back(WalkedCommit{node.sha, node.parent_shas, node.time});
    }
    return out;
  }

 private:
  struct Node {
    std::string sha;
    int64_t time = 0;
    std::vector<std::string> parent_shas;
    std::vector<int> parents;  // readable parents, once expanded
    bool expanded = false;
    bool queued = false;
    bool uninteresting = false;
  };
  struct Queued {
    int64_t time;
    int node;
    bool operator<(const Queued& o) const {
      // Newest first; among equal times, the one queued first.
      return time != o.time ? time < o.time : node > o.node;
    }
  };

  // The node for `oid`, reading the commit the first time; -1 when it
  // cannot be read.
  int NodeFor(const git_oid& oid) {
    std::string key(reinterpret_cast<const char*>(oid.id), GIT_OID_RAWSZ);
    auto it = index_.find(key);
    if (it != index_.end()) return it->second;
    git_commit* raw = nullptr;
    int rc = git_commit_lookup(&raw, repo_, &oid);
    CommitPtr commit(raw);
    if (rc < 0) {
      git_error_clear();
      return -1;
    }
    Node node;
    node.sha = OidToString(&oid);
    node.time = static_cast<int64_t>(git_commit_time(commit.get()));
    unsigned int count = git_commit_parentcount(commit.get());
    for (unsigned int i = 0; i < count; ++i) {
      node.parent_shas.push_back(OidToString(git_commit_parent_id(commit.get(), i)));
    }
    int n = static_cast<int>(nodes_.size());
    nodes_.push_back(std::move(node));
    index_.emplace(std::move(key), n);
    nodes_[n].queued = true;
    ++interesting_queued_;
    queue_.push(Queued{nodes_[n].time, n});
    return n;
  }

  void Expand(int n) {
    if (nodes_[n].expanded) return;
    nodes_[n].expanded = true;
    if (shallow_.count(nodes_[n].sha)) {
      if (!nodes_[n].parent_shas.empty()) {
        truncated_.push_back(nodes_[n].sha + ": shallow boundary");
      }
      return;
    }
    std::vector<std::string> parent_shas = nodes_[n].parent_shas;
    for (const std::string& sha : parent_shas) {
      git_oid oid;
      int p = -1;
      if (git_oid_fromstr(&oid, sha.c_str()) == 0) p = NodeFor(oid);
      if (p < 0) {
        truncated_.push_back(nodes_[n].sha + ": parent " + sha + " cannot be read");
        continue;
      }
      nodes_[n].parents.push_back(p);
      if (nodes_[n].uninteresting) MarkUninteresting(p);
    }
  }

  // Marks `n` and everything already known behind it uninteresting.
  void MarkUninteresting(int n) {
    std::vector<int> stack{n};
    while (!stack.empty()) {
      Node& node = nodes_[stack.back()];
      stack.pop_back();
      if (node.uninteresting) continue;
      node.uninteresting = true;
      if (node.queued) --interesting_queued_;
      stack.insert(stack.end(), node.parents.begin(), node.parents.end());
    }
  }

  // `set` ordered parents first (Kahn); among commits whose parents are all
  // out, the oldest (then the smallest sha) first.
  std::vector<int> TopologicalOrder(const std::vector<int>& set) {
    std::unordered_map<int, int> waiting;  // node -> parents in the set not yet out
    std::unordered_map<int, std::vector<int>> children;
    for (int n : set) waiting[n] = 0;
    for (int n : set) {
      for (int p : nodes_[n].parents) {
        if (!waiting.count(p)) continue;
        ++waiting[n];
        children[p].push_back(n);
      }
    }
    auto later = [this](int a, int b) {
      if (nodes_[a].time != nodes_[b].time) return nodes_[a].time > nodes_[b].time;
      return nodes_[a].sha > nodes_[b].sha;
    };
    std::priority_queue<int, std::vector<int>, decltype(later)> ready(later);
    for (const auto& [n, count] : waiting) {
      if (count == 0) ready.push(n);
    }
    std::vector<int> out;
    while (!ready.empty()) {
      int n = ready.top();
      ready.pop();
      out.push_back(n);
      for (int c : children[n]) {
        if (--waiting[c] == 0) ready.push(c);
      }
    }
    return out;
  }

  git_repository* repo_;
  std::unordered_set<std::string> shallow_;
  int64_t min_time_s_;
  std::vector<Node> nodes_;
  std::unordered_map<std::string, int> index_;  // raw oid -> node
  std::priority_queue<Queued> queue_;
  int interesting_queued_ = 0;
  int64_t oldest_taken_ = std::numeric_limits<int64_t>::max();
  int slop_ = kSlop;
  std::vector<int> taken_;
  std::vector<std::string> cut_off_;
  std::vector<std::string> truncated_;
};

}  // namespace

Result<NewHistory> Repository::WalkNew(const std::string& head,
                                       const std::vector<std::string>& hide, int64_t min_time_s) {
  WTD_RETURN_IF_ERROR(CheckPresent());
  git_oid head_oid;
  WTD_RETURN_IF_ERROR(ParseOid(head, &head_oid));
  Walk walk(main_.get(), ReadShallow(common_dir_), min_time_s);
  // Hidden commits first: a head that is itself hidden is never interesting.
  size_t unknown = 0;
  for (const std::string& sha : hide) {
    git_oid oid;
    if (!ParseOid(sha, &oid).ok() || !walk.Start(oid, /*hidden=*/true)) ++unknown;
  }
  if (!walk.Start(head_oid, /*hidden=*/false)) {
    return Status::NotFound("commit " + head + " of " + root_ + " cannot be read");
  }
  walk.Run();
  NewHistory out = walk.Result();
  out.unknown_hidden = unknown;
  return out;
}

}  // namespace wtd::git
