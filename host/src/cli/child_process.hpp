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

// Forks and execs args[0] with args; env is set in the child first. With a
// non-empty output path, the child's stdout and stderr go to that file
// (created or truncated); with a non-empty cwd, the child runs in that folder
// (exit status 127 and a line in its output when it cannot). The child is
// tracked for forward_signals_to_children. Throws cdrmix::Error when the fork fails.
pid_t start_child(const std::vector<std::string> &args, const std::vector<std::pair<std::string, std::string>> &env,
                  const std::string &output = "", const std::string &cwd = "");

// Stops tracking a child that has been waited for.
void forget_child(pid_t pid);

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
