// Tests of the Waker: notifications, and inotify watches that outlive the
// directory they were put on (deleted or moved, then made again).
#include "scheduler/waker.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "fakes/temp_dir.h"

namespace wtd {
namespace {

namespace fs = std::filesystem;

// Long enough never to pass on a working waker, so a wait that reaches it
// means the event never came.
constexpr int64_t kEventMs = 10000;

class WakerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Waker>> w = Waker::Create(/*use_inotify=*/true);
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    waker_ = std::move(*w);
    dir_ = tmp_.Sub("refs/heads/x");
    fs::create_directories(dir_);
  }

  static void Touch(const std::string& path) { std::ofstream(path) << "x\n"; }

  // Waits (up to kEventMs) until the waker has dropped every watch, draining
  // the events that say why. False if it never does.
  bool WaitUntilNoWatches() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kEventMs);
    while (waker_->watch_count() != 0 && std::chrono::steady_clock::now() < deadline) {
      waker_->Wait(100);
    }
    return waker_->watch_count() == 0;
  }

  TempDir tmp_;
  std::string dir_;
  std::unique_ptr<Waker> waker_;
};

TEST_F(WakerTest, NotifyAndFileChangesWakeItAndTimeoutsDoNot) {
  EXPECT_EQ(waker_->Wait(0), Waker::Reason::kTimeout);
  waker_->Notify();
  EXPECT_EQ(waker_->Wait(kEventMs), Waker::Reason::kNotified);
  EXPECT_EQ(waker_->Watch({dir_}), 1u);
  EXPECT_EQ(waker_->Watch({dir_}), 0u) << "an existing watch is kept, not added again";
  Touch(dir_ + "/ref");
  EXPECT_EQ(waker_->Wait(kEventMs), Waker::Reason::kFileChange);
}

TEST_F(WakerTest, DirectoryDeletedAndMadeAgainIsWatchedAgain) {
  ASSERT_EQ(waker_->Watch({dir_}), 1u);
  fs::remove_all(dir_);
  // Its deletion is a change, and the dead watch is forgotten.
  EXPECT_EQ(waker_->Wait(kEventMs), Waker::Reason::kFileChange);
  ASSERT_TRUE(WaitUntilNoWatches()) << "the watch of the deleted " << dir_ << " is still kept";
  EXPECT_EQ(waker_->Watch({dir_}), 0u) << "nothing to watch while the directory is missing";

  fs::create_directories(dir_);
  EXPECT_EQ(waker_->Watch({dir_}), 1u) << "the re-created directory is watched again";
  Touch(dir_ + "/ref");
  EXPECT_EQ(waker_->Wait(kEventMs), Waker::Reason::kFileChange)
      << "a change in the re-created directory did not wake the waker";
}

TEST_F(WakerTest, DirectoryMovedAwayIsNoLongerFollowedAndItsPathIsWatchedAgain) {
  ASSERT_EQ(waker_->Watch({dir_}), 1u);
  std::string moved = tmp_.Sub("moved");
  fs::rename(dir_, moved);
  EXPECT_EQ(waker_->Wait(kEventMs), Waker::Reason::kFileChange);
  ASSERT_TRUE(WaitUntilNoWatches()) << "the watch still follows " << dir_ << " to " << moved;
  fs::create_directories(dir_);
  EXPECT_EQ(waker_->Watch({dir_}), 1u);
  Touch(dir_ + "/ref");
  EXPECT_EQ(waker_->Wait(kEventMs), Waker::Reason::kFileChange);
  // The moved directory is not watched any more: a change there does not
  // wake (the watch on dir_ is drained first, so only `moved` could).
  EXPECT_EQ(waker_->Wait(0), Waker::Reason::kTimeout);
  Touch(moved + "/other");
  EXPECT_EQ(waker_->Wait(300), Waker::Reason::kTimeout);
}

TEST_F(WakerTest, DroppingAWatchItselfIsNotAChange) {
  ASSERT_EQ(waker_->Watch({dir_}), 1u);
  EXPECT_EQ(waker_->Watch({}), 0u);
  EXPECT_EQ(waker_->watch_count(), 0u);
  // The kernel answers inotify_rm_watch with IN_IGNORED: not a change.
  EXPECT_EQ(waker_->Wait(300), Waker::Reason::kTimeout);
}

TEST_F(WakerTest, InotifyTurnsOffAndOnAgain) {
  ASSERT_EQ(waker_->Watch({dir_}), 1u);
  waker_->SetInotify(false);
  EXPECT_EQ(waker_->watch_count(), 0u);
  EXPECT_EQ(waker_->Watch({dir_}), 0u) << "off: nothing is watched";
  Touch(dir_ + "/off");
  EXPECT_EQ(waker_->Wait(300), Waker::Reason::kTimeout);
  waker_->SetInotify(true);
  EXPECT_EQ(waker_->Watch({dir_}), 1u) << "on again: the next Watch watches";
  Touch(dir_ + "/on");
  EXPECT_EQ(waker_->Wait(kEventMs), Waker::Reason::kFileChange);
  waker_->SetInotify(true);  // already on: the watch stays
  EXPECT_EQ(waker_->watch_count(), 1u);
}

TEST_F(WakerTest, WithoutInotifyOnlyNotifyWakesIt) {
  Result<std::unique_ptr<Waker>> w = Waker::Create(/*use_inotify=*/false);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)->Watch({dir_}), 0u);
  EXPECT_EQ((*w)->watch_count(), 0u);
  (*w)->Notify();
  EXPECT_EQ((*w)->Wait(kEventMs), Waker::Reason::kNotified);
}

}  // namespace
}  // namespace wtd
