#include "locks/lock_refs.h"

#include <git2.h>
#include <unistd.h>

#include <algorithm>

#include "locks/git_handle.h"

namespace wtd::locks {
namespace {

// The loose object path of `oid`, relative to the common dir.
std::string LooseObjectPath(const std::string& hex) {
  return "objects/" + hex.substr(0, 2) + "/" + hex.substr(2);
}

}  // namespace

Result<std::unique_ptr<LockRefs>> LockRefs::Open(const std::string& repo_path,
                                                 LockRefsOptions options) {
  WTD_RETURN_IF_ERROR(ValidateLocksRoot(options.locks_root));
  WTD_ASSIGN_OR_RETURN(std::unique_ptr<GitHandle> git, GitHandle::Open(repo_path));
  return std::unique_ptr<LockRefs>(new LockRefs(std::move(git), repo_path, std::move(options)));
}

LockRefs::LockRefs(std::unique_ptr<GitHandle> git, std::string repo_path, LockRefsOptions options)
    : git_(std::move(git)), repo_path_(std::move(repo_path)), options_(std::move(options)) {}

LockRefs::~LockRefs() = default;

std::string LockRefs::Where(const std::string& ref) const {
  return "repository " + repo_path_ + ", ref " + ref;
}

Result<std::string> LockRefs::WriteBlob(const std::string& ref, const LockOwner& owner) {
  std::string bytes = EncodeOwner(owner);
  git_oid oid;
  int rc = git_blob_create_from_buffer(&oid, git_->repo(), bytes.data(), bytes.size());
  if (rc < 0) return GitError(rc, Where(ref) + ": write the owner blob");
  std::string hex = OidToString(oid);
  // libgit2 fsynced the object file and its fan-out directory if it wrote
  // it; the fan-out directory's own entry is ours. An object that was
  // already there (packed, or loose from an earlier write) is taken as is.
  std::string loose = LooseObjectPath(hex);
  if (access((git_->common_dir() + "/" + loose).c_str(), F_OK) == 0) {
    Status s = git_->SyncDirsTo(loose);
    if (!s.ok()) return s.WithContext(Where(ref) + ": sync the owner blob");
  }
  return hex;
}

bool LockRefs::StaleLockRemoved(const std::string& ref) {
  Result<bool> removed = git_->RemoveStaleRefLock(ref, options_.stale_ref_lock_ms);
  return removed.ok() && *removed;
}

Result<std::string> LockRefs::Create(const LockName& name, const LockOwner& owner) {
  WTD_ASSIGN_OR_RETURN(std::string ref, LockRefName(options_.locks_root, name));
  MutexLock lock(&mu_);
  WTD_ASSIGN_OR_RETURN(std::string hex, WriteBlob(ref, owner));
  git_oid blob;
  git_oid zero{};  // all zero: "the ref must not exist"
  WTD_RETURN_IF_ERROR(ParseOid(hex, "owner blob", &blob));
  // force=0 refuses an existing ref before taking the ref's lock file; the
  // zero old id makes libgit2 check again under that lock ("must not
  // exist"), which closes the window between its check and its write.
  git_reference* raw = nullptr;
  git_repository* repo = git_->repo();  // read under mu_, used by the lambda
  auto create = [&] {
    return git_reference_create_matching(&raw, repo, ref.c_str(), &blob, 0, &zero, "wtd: lock");
  };
  int rc = create();
  if (rc == GIT_ELOCKED && StaleLockRemoved(ref)) rc = create();
  ReferencePtr created(raw);
  if (rc == GIT_EEXISTS || rc == GIT_EMODIFIED) {
    return Status::Busy(Where(ref) + ": lock is held (the ref exists)");
  }
  if (rc < 0) return GitError(rc, Where(ref) + ": create");
  Status s = git_->SyncDirsTo(ref);
  if (!s.ok()) return s.WithContext(Where(ref) + ": created but not synced");
  return hex;
}

Result<std::string> LockRefs::Update(const LockName& name, const std::string& expected_blob,
                                     const LockOwner& new_owner) {
  WTD_ASSIGN_OR_RETURN(std::string ref, LockRefName(options_.locks_root, name));
  git_oid expected;
  WTD_RETURN_IF_ERROR(ParseOid(expected_blob, Where(ref) + ": expected blob", &expected));
  MutexLock lock(&mu_);
  WTD_ASSIGN_OR_RETURN(std::string hex, WriteBlob(ref, new_owner));
  git_oid blob;
  WTD_RETURN_IF_ERROR(ParseOid(hex, "owner blob", &blob));
  git_reference* raw = nullptr;
  git_repository* repo = git_->repo();  // read under mu_, used by the lambda
  auto update = [&] {
    return git_reference_create_matching(&raw, repo, ref.c_str(), &blob, 1, &expected,
                                         "wtd: lock renewed");
  };
  int rc = update();
  if (rc == GIT_ELOCKED && StaleLockRemoved(ref)) rc = update();
  ReferencePtr updated(raw);
  if (rc == GIT_EMODIFIED) {
    return Status::Aborted(Where(ref) + ": not updated: it no longer points at " + expected_blob);
  }
  if (rc == GIT_ENOTFOUND) return Status::NotFound(Where(ref) + ": not updated: no such ref");
  if (rc < 0) return GitError(rc, Where(ref) + ": update");
  Status s = git_->SyncDirsTo(ref);
  if (!s.ok()) return s.WithContext(Where(ref) + ": updated but not synced");
  return hex;
}

Status LockRefs::Delete(const LockName& name, const std::string& expected_blob) {
  WTD_ASSIGN_OR_RETURN(std::string ref, LockRefName(options_.locks_root, name));
  git_oid expected;
  WTD_RETURN_IF_ERROR(ParseOid(expected_blob, Where(ref) + ": expected blob", &expected));
  MutexLock lock(&mu_);
  git_reference* raw = nullptr;
  int rc = git_reference_lookup(&raw, git_->repo(), ref.c_str());
  ReferencePtr current(raw);
  if (rc == GIT_ENOTFOUND) return Status::NotFound(Where(ref) + ": not deleted: no such ref");
  if (rc < 0) return GitError(rc, Where(ref) + ": look up before delete");
  const git_oid* target = git_reference_target(current.get());
  if (target == nullptr || !git_oid_equal(target, &expected)) {
    std::string seen = target ? OidToString(*target) : "a symbolic target";
    return Status::Aborted(Where(ref) + ": not deleted: it points at " + seen + ", not " +
                           expected_blob);
  }
  // git_reference_delete passes the looked-up target to the ref database,
  // which compares it again under the ref's lock file (GIT_EMODIFIED when
  // someone moved the ref in between), so the delete is a CAS too.
  rc = git_reference_delete(current.get());
  if (rc == GIT_ELOCKED && StaleLockRemoved(ref)) rc = git_reference_delete(current.get());
  if (rc == GIT_EMODIFIED) {
    return Status::Aborted(Where(ref) + ": not deleted: it changed while deleting");
  }
  if (rc == GIT_ENOTFOUND) return Status::NotFound(Where(ref) + ": not deleted: no such ref");
  if (rc < 0) return GitError(rc, Where(ref) + ": delete");
  Status s = git_->SyncParentOf(ref);
  if (!s.ok() && !s.IsNotFound()) return s.WithContext(Where(ref) + ": deleted but not synced");
  return Status::OK();
}

Result<LockEntry> LockRefs::ReadRef(const std::string& ref) {
  git_reference* raw = nullptr;
  int rc = git_reference_lookup(&raw, git_->repo(), ref.c_str());
  ReferencePtr r(raw);
  if (rc == GIT_ENOTFOUND) return Status::NotFound(Where(ref) + ": no such ref");
  if (rc < 0) return GitError(rc, Where(ref) + ": look up");
  LockEntry e;
  e.ref = ref;
  Result<LockName> name = ParseLockRef(options_.locks_root, ref);
  if (name.ok()) {
    e.name = *name;
  } else {
    e.error = name.status().message();
  }
  const git_oid* target = git_reference_target(r.get());
  if (target == nullptr) {
    if (e.error.empty()) e.error = "a symbolic ref, not a lock";
    return e;
  }
  e.blob = OidToString(*target);
  git_blob* braw = nullptr;
  rc = git_blob_lookup(&braw, git_->repo(), target);
  BlobPtr blob(braw);
  if (rc < 0) {
    const git_error* err = git_error_last();
    if (e.error.empty()) {
      e.error = "blob " + e.blob + " cannot be read: " + (err && err->message ? err->message : "?");
    }
    return e;
  }
  std::string_view bytes(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                         static_cast<size_t>(git_blob_rawsize(blob.get())));
  Result<LockOwner> owner = ParseOwner(bytes);
  if (owner.ok()) {
    e.owner = *owner;
  } else if (e.error.empty()) {
    e.error = "blob " + e.blob + ": " + owner.status().message();
  }
  return e;
}

Result<LockEntry> LockRefs::Read(const LockName& name) {
  WTD_ASSIGN_OR_RETURN(std::string ref, LockRefName(options_.locks_root, name));
  MutexLock lock(&mu_);
  return ReadRef(ref);
}

Result<std::vector<LockEntry>> LockRefs::List() {
  MutexLock lock(&mu_);
  std::string prefix = options_.locks_root + "/";
  std::string glob = prefix + "*";
  git_reference_iterator* raw = nullptr;
  int rc = git_reference_iterator_glob_new(&raw, git_->repo(), glob.c_str());
  RefIteratorPtr it(raw);
  if (rc < 0) return GitError(rc, "repository " + repo_path_ + ": list " + glob);
  std::vector<std::string> refs;
  const char* ref_name = nullptr;
  while ((rc = git_reference_next_name(&ref_name, it.get())) == 0) {
    std::string ref(ref_name);
    if (ref.compare(0, prefix.size(), prefix) == 0) refs.push_back(std::move(ref));
  }
  if (rc != GIT_ITEROVER) return GitError(rc, "repository " + repo_path_ + ": list " + glob);
  std::sort(refs.begin(), refs.end());
  std::vector<LockEntry> out;
  for (const std::string& ref : refs) {
    Result<LockEntry> e = ReadRef(ref);
    if (e.ok()) {
      out.push_back(std::move(*e));
    } else if (!e.status().IsNotFound()) {  // NotFound: deleted since it was listed
      return e.status();
    }
  }
  return out;
}

}  // namespace wtd::locks
