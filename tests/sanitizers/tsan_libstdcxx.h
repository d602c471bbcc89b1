// Included before anything else in every translation unit of a TSan build
// (STOWAGE_SANITIZE=thread, by -include).
//
// libstdc++ 12 makes std::timed_mutex::try_lock_until and try_lock_for on the
// steady clock call pthread_mutex_clocklock (and std::shared_timed_mutex
// pthread_rwlock_clock*lock), which the TSan runtime of GCC 12 does not
// intercept: TSan then never sees the lock taken, reports "unlock of an
// unlocked mutex" at its unlock, and misses the ordering the mutex gives, so
// it would report races on what the mutex guards (the postgres stage's
// schema_mu_ showed it). Without these macros libstdc++ waits on the system
// clock with pthread_mutex_timedlock and pthread_rwlock_timed*lock, which
// TSan intercepts. Only how long a timed lock may wait is measured on another
// clock; what is locked, and when, is the same.
#pragma once

#include <bits/c++config.h>

#undef _GLIBCXX_USE_PTHREAD_MUTEX_CLOCKLOCK
#undef _GLIBCXX_USE_PTHREAD_RWLOCK_CLOCKLOCK
