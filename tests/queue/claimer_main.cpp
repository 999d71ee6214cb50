// tv_queue_claimer DB WORKER: a worker process for the multi-process race test. It opens the
// queue with its own connection, prints "ready", waits for its stdin to close (the starting
// gun, fired for all claimers at once), then claims until nothing is left, printing
// "claimed ID" for each job it won and "done N" at the end.
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <string>

#include "trainvisor/fleet/job_queue.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DB WORKER\n", argv[0]);
    return 2;
  }
  try {
    auto queue = tv::fleet::JobQueue::open(argv[1]);
    const std::string worker = argv[2];
    tv::fleet::HostCapability capability;
    capability.hostname = worker;
    capability.cores = 1;
    capability.ram_gib = 1;
    std::printf("ready\n");
    std::fflush(stdout);
    char buf[64];
    while (::read(STDIN_FILENO, buf, sizeof buf) > 0) {
    }
    int won = 0;
    while (auto claim = queue.claim_next(worker, capability)) {
      std::printf("claimed %s\n", claim->spec.id.c_str());
      ++won;
    }
    std::printf("done %d\n", won);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tv_queue_claimer %s: %s\n", argv[2], e.what());
    return 1;
  }
}
