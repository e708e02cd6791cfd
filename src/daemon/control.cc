#include "daemon/control.h"

#include <unistd.h>

#include <memory>

namespace wtd {
namespace {

class Control : public DaemonControl {
 public:
  explicit Control(ControlContext* c) : c_(c) {}

  Info Status() override {
    Info info;
    info.pid = getpid();
    info.version = WTD_VERSION;
    info.started_at_ms = c_->started_at_ms;
    info.incarnation = c_->incarnation;
    info.socket_path = c_->socket_path;
    info.store_commits = c_->runs->store()->commits();
    info.store_bytes = c_->runs->store()->DiskBytes();
    info.recovery = c_->recovery;
    info.scheduler = c_->scheduler->Snapshot();
    return info;
  }
  void RequestStop() override { c_->scheduler->RequestStop(); }
  void SetPaused(bool paused) override { c_->scheduler->SetPaused(paused); }
  Result<ReloadResult> Reload() override { return c_->reload(); }
  Result<GcResult> CollectHistory(bool dry_run) override { return c_->collect(dry_run); }

 private:
  ControlContext* c_;
};

}  // namespace

std::vector<CommandSpec> ControlCommands(ControlContext* ctx) {
  auto control = std::make_shared<Control>(ctx);
  auto context = std::make_shared<CommandContext>();
  context->runs = ctx->runs;
  context->state_dir = ctx->state_dir;
  context->daemon = control.get();
  context->locks = ctx->locks;
  context->slots = ctx->slots;
  std::vector<CommandSpec> table;
  for (const CommandDef& def : AllCommands()) {
    if (def.handle == nullptr) continue;  // wtctl-only
    auto handle = def.handle;
    table.push_back(
        {std::string(def.name), std::string(def.summary),
         [context, control, handle](const json& args) { return handle(*context, args); }});
  }
  return table;
}

}  // namespace wtd
