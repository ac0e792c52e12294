// Child processes of this program, for commands that start others (`cdrmix
// launch`: ranks; `cdrmix sweep`: runs): the program's own path, starting a
// child with extra environment variables and optionally its output in a file,
// naming how it ended, and passing Ctrl-C / SIGTERM on to every child started.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace cdrmix {

// This executable's path (/proc/self/exe), to start copies of it.
std::string this_program();

struct ChildSpec {
    std::vector<std::string> args;                          // args[0]: the program
    std::vector<std::pair<std::string, std::string>> env;    // set in the child
    std::string output; // non-empty: the child's stdout and stderr go to this file (created or truncated)
    std::string cwd;    // non-empty: the folder the child runs in
    // A process group of its own: a terminal's Ctrl-C reaches only this process,
    // which passes it on once (a child that got it twice would quit without a checkpoint).
    bool own_process_group = false;
};

// Forks and execs spec.args. A child that cannot enter spec.cwd or exec exits
// with status 127 and a line in its output. The child is tracked for
// forward_signals_to_children. Throws cdrmix::Error when the output file cannot
// be made or the fork fails.
pid_t start_child(const ChildSpec &spec);

// Stops tracking a child that has been waited for.
void forget_child(pid_t pid);

// Waits for the child (through interrupted system calls), stops tracking it and
// returns its wait status; throws cdrmix::Error when waitpid fails.
int wait_for_child(pid_t pid);
// Without waiting: the child's wait status once it has ended (and stops
// tracking it), or -1 while it runs.
int poll_child(pid_t pid);

// From now on SIGINT and SIGTERM are passed to every tracked child (and
// recorded: see interrupted()), instead of ending this process.
void forward_signals_to_children();
// Sends sig to every tracked child.
void signal_children(int sig);
// Whether SIGINT or SIGTERM arrived since forward_signals_to_children().
bool interrupted();

// "exit status 1", "signal Killed", ...
std::string status_text(int wait_status);
// The shell's convention: the exit status, or 128 + the signal.
int exit_code_of(int wait_status);

} // namespace cdrmix
