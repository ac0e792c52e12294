// The dashboard's window: GLFW + OpenGL 3 + ImGui on the calling (main)
// thread. Redraws when data arrives or the user interacts, never faster than
// max_fps, and sleeps in glfwWaitEventsTimeout otherwise, so a training run
// beside it keeps its cores.
#pragma once

#include "dashboard.hpp"

#include <functional>
#include <stdexcept>
#include <string>

namespace cdrmix::ui {

// No display, no OpenGL 3 context: the message is one line for the user.
struct DisplayError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct AppOptions {
    std::string title = "cdrmix";
    int width = 1280, height = 800;
    double max_fps = 30;  // while the user interacts
    double data_fps = 1;  // while only new records arrive
    // > 0: render this many frames once data_complete() says the data is in, then return.
    int frames = 0;
    std::string screenshot; // with frames: the last frame's pixels as PNG
};

struct AppHooks {
    std::function<bool()> poll;          // take in new records; true if anything changed
    std::function<bool()> data_complete; // for AppOptions::frames
};

struct FrameStats {
    int frames = 0;
    // Time to build and render a frame (glFinish included), over the frames after the first.
    double mean_ms = 0, max_ms = 0;
    double mean_build_ms = 0; // of mean_ms: building the frame on the CPU, before OpenGL draws it
};

// Runs until the window is closed (or frames are done). Throws DisplayError,
// and std::runtime_error when the screenshot cannot be written.
FrameStats run_app(Dashboard &dashboard, const AppOptions &options, const AppHooks &hooks);

// Reads the current back buffer and writes it as PNG.
void write_screenshot(const std::string &path, int width, int height);

} // namespace cdrmix::ui
