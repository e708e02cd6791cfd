// Thread-safety annotations checked by clang's -Wthread-safety (built with
// -DWTD_THREAD_SAFETY=ON, docs/design/concurrency.md). They state which mutex
// guards a field and which locks a function needs, and clang proves every
// access at compile time. On a compiler without the attributes (GCC) they
// expand to nothing.
//
// The capabilities are wtd::Mutex and wtd::MutexLock (base/mutex.h):
// std::mutex and std::lock_guard carry no annotations in libstdc++, so the
// analysis cannot see them.
//
//   GUARDED_BY(mu)          the field is read and written only with mu held
//   PT_GUARDED_BY(mu)       the pointee of the pointer field is (the pointer
//                           itself is not)
//   REQUIRES(mu...)         the caller must hold mu
//   EXCLUDES(mu...)         the caller must not hold mu (the function takes it)
//   ACQUIRE(mu...)          the function returns holding mu
//   RELEASE(mu...)          the function releases mu
//   ASSERT_CAPABILITY(mu)   the function checks at run time that mu is held
//   CAPABILITY(name)        the class is a lock (LOCKABLE is the old name)
//   SCOPED_CAPABILITY       the class is an RAII holder of a lock
//   NO_THREAD_SAFETY_ANALYSIS  the function is not checked (say why)
#ifndef WTD_BASE_THREAD_ANNOTATIONS_H_
#define WTD_BASE_THREAD_ANNOTATIONS_H_

#if defined(__has_attribute)
#if __has_attribute(guarded_by)
#define WTD_THREAD_ANNOTATION_(x) __attribute__((x))
#endif
#endif
#ifndef WTD_THREAD_ANNOTATION_
#define WTD_THREAD_ANNOTATION_(x)  // no-op: the compiler does not check these
#endif

#ifndef GUARDED_BY
#define GUARDED_BY(x) WTD_THREAD_ANNOTATION_(guarded_by(x))
#endif

#ifndef PT_GUARDED_BY
#define PT_GUARDED_BY(x) WTD_THREAD_ANNOTATION_(pt_guarded_by(x))
#endif

#ifndef ACQUIRED_AFTER
#define ACQUIRED_AFTER(...) WTD_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
#endif

#ifndef ACQUIRED_BEFORE
#define ACQUIRED_BEFORE(...) WTD_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))
#endif

#ifndef REQUIRES
#define REQUIRES(...) WTD_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#endif

#ifndef REQUIRES_SHARED
#define REQUIRES_SHARED(...) WTD_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
#endif

#ifndef EXCLUDES
#define EXCLUDES(...) WTD_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))
#endif

#ifndef ACQUIRE
#define ACQUIRE(...) WTD_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#endif

#ifndef RELEASE
#define RELEASE(...) WTD_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#endif

#ifndef TRY_ACQUIRE
#define TRY_ACQUIRE(...) WTD_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
#endif

#ifndef ASSERT_CAPABILITY
#define ASSERT_CAPABILITY(x) WTD_THREAD_ANNOTATION_(assert_capability(x))
#endif

#ifndef RETURN_CAPABILITY
#define RETURN_CAPABILITY(x) WTD_THREAD_ANNOTATION_(lock_returned(x))
#endif

#ifndef CAPABILITY
#define CAPABILITY(x) WTD_THREAD_ANNOTATION_(capability(x))
#endif

#ifndef LOCKABLE
#define LOCKABLE WTD_THREAD_ANNOTATION_(lockable)
#endif

#ifndef SCOPED_CAPABILITY
#define SCOPED_CAPABILITY WTD_THREAD_ANNOTATION_(scoped_lockable)
#endif

#ifndef NO_THREAD_SAFETY_ANALYSIS
#define NO_THREAD_SAFETY_ANALYSIS WTD_THREAD_ANNOTATION_(no_thread_safety_analysis)
#endif

#endif  // WTD_BASE_THREAD_ANNOTATIONS_H_
