#include "app.hpp"

#include <GLFW/glfw3.h>
#include <imgui.h>
#include <backends/imgui_impl_glfw.h>
#include <backends/imgui_impl_opengl3.h>
#include <stb_image_write.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <vector>

namespace cdrmix::ui {

namespace {

std::string glfw_error_text() {
    const char *desc = nullptr;
    glfwGetError(&desc);
    return desc ? desc : "unknown GLFW error";
}

// Owns GLFW, the window and the ImGui context; tears them down in order.
class Window {
public:
    explicit Window(const AppOptions &o) {
        const char *x11 = std::getenv("DISPLAY"), *wayland = std::getenv("WAYLAND_DISPLAY");
        if ((!x11 || !*x11) && (!wayland || !*wayland))
            throw DisplayError("no display (DISPLAY is not set): use `cdrmix run` for a headless run, or "
                               "`xvfb-run -a cdrmix gui ...` for a virtual display");
        if (!glfwInit()) throw DisplayError("cannot open the display: " + glfw_error_text() +
                                            " (use `cdrmix run`, or `xvfb-run -a cdrmix gui ...`)");
        glfwWindowHint(GLFW_CONTEXT_VERSION_MAJOR, 3);
        glfwWindowHint(GLFW_CONTEXT_VERSION_MINOR, 0);
        window_ = glfwCreateWindow(o.width, o.height, o.title.c_str(), nullptr, nullptr);
        if (!window_) {
            const std::string why = glfw_error_text();
            glfwTerminate();
            throw DisplayError("cannot create an OpenGL 3 window: " + why);
        }
        glfwMakeContextCurrent(window_);
        glfwSwapInterval(0); // pacing is ours (max_fps), not the display's
        IMGUI_CHECKVERSION();
        ImGui::CreateContext();
        ImGui::GetIO().IniFilename = nullptr; // the layout is fixed; write no imgui.ini into the working directory
        ImGui::StyleColorsDark();
        ImGui::GetStyle().WindowRounding = 0;
        // A rendering for --frames is a picture of the data: no hover tooltips from wherever the pointer sits.
        if (o.frames > 0) ImGui::GetIO().ConfigFlags |= ImGuiConfigFlags_NoMouse;
        ImGui_ImplGlfw_InitForOpenGL(window_, true);
        ImGui_ImplOpenGL3_Init("#version 130");
    }
    ~Window() {
        ImGui_ImplOpenGL3_Shutdown();
        ImGui_ImplGlfw_Shutdown();
        ImGui::DestroyContext();
        glfwDestroyWindow(window_);
        glfwTerminate();
    }
    Window(const Window &) = delete;
    Window &operator=(const Window &) = delete;
    GLFWwindow *get() const { return window_; }

private:
    GLFWwindow *window_ = nullptr;
};

// Returns the milliseconds spent building the frame (panels, thinning, ImGui's vertex lists), before OpenGL.
double render(GLFWwindow *window, Dashboard &dashboard) {
    const auto t0 = std::chrono::steady_clock::now();
    ImGui_ImplOpenGL3_NewFrame();
    ImGui_ImplGlfw_NewFrame();
    ImGui::NewFrame();
    dashboard.draw();
    ImGui::Render();
    const double build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    int w = 0, h = 0;
    glfwGetFramebufferSize(window, &w, &h);
    glViewport(0, 0, w, h);
    glClearColor(0.08f, 0.08f, 0.09f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    ImGui_ImplOpenGL3_RenderDrawData(ImGui::GetDrawData());
    return build_ms;
}

} // namespace

void write_screenshot(const std::string &path, int width, int height) {
    std::vector<unsigned char> pixels(static_cast<size_t>(width) * static_cast<size_t>(height) * 3);
    glReadBuffer(GL_BACK);
    glPixelStorei(GL_PACK_ALIGNMENT, 1);
    glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE, pixels.data());
    stbi_flip_vertically_on_write(1); // OpenGL's rows start at the bottom
    if (!stbi_write_png(path.c_str(), width, height, 3, pixels.data(), width * 3))
        throw std::runtime_error(path + ": cannot write the screenshot");
}

FrameStats run_app(Dashboard &dashboard, const AppOptions &o, const AppHooks &hooks) {
    Window win(o);
    GLFWwindow *w = win.get();
    using clock = std::chrono::steady_clock;
    FrameStats stats;
    double total_ms = 0, build_total_ms = 0;
    const double min_interval = 1.0 / std::max(1.0, o.max_fps);
    // New records alone redraw at most this often: curves growing once a second read as live,
    // and a software-rendered frame (Xvfb, no GPU) then costs the run little.
    const double data_interval = std::max(min_interval, 1.0 / std::max(0.1, o.data_fps));
    bool stale = true; // records arrived since the last frame
    int eager_frames = 3; // ImGui settles layout and hover state over a few frames after any input
    double last_render = -1;
    double cx = 0, cy = 0;
    glfwGetCursorPos(w, &cx, &cy);
    while (!glfwWindowShouldClose(w)) {
        if (hooks.poll && hooks.poll()) stale = true;
        const bool counting = o.frames > 0 && (!hooks.data_complete || hooks.data_complete());
        const double now = glfwGetTime();
        const double since = now - last_render;
        if (((eager_frames > 0 || counting) && since >= min_interval) || (stale && since >= data_interval)) {
            stale = false;
            const auto t0 = clock::now();
            const double build_ms = render(w, dashboard);
            if (counting) {
                glFinish(); // charge the frame's real rendering cost to it, for the reported frame time
                const double ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
                // The first frame builds the font atlas and compiles shaders: not a steady-state frame.
                if (++stats.frames > 1) {
                    total_ms += ms;
                    build_total_ms += build_ms;
                    stats.max_ms = std::max(stats.max_ms, ms);
                }
                if (stats.frames == o.frames) {
                    int fw = 0, fh = 0;
                    glfwGetFramebufferSize(w, &fw, &fh);
                    if (!o.screenshot.empty()) write_screenshot(o.screenshot, fw, fh);
                    glfwSwapBuffers(w);
                    break;
                }
            }
            glfwSwapBuffers(w);
            last_render = now;
            eager_frames = std::max(0, eager_frames - 1);
        }
        // Sleep until input arrives, the next frame is allowed, or it is time to look for new data.
        const double wait = eager_frames > 0 || counting ? std::max(0.0, last_render + min_interval - glfwGetTime()) : 0.25;
        const double before = glfwGetTime();
        glfwWaitEventsTimeout(wait);
        double nx = 0, ny = 0;
        glfwGetCursorPos(w, &nx, &ny);
        if (glfwGetTime() - before < wait * 0.9 || nx != cx || ny != cy) eager_frames = 3;
        cx = nx, cy = ny;
    }
    stats.mean_ms = stats.frames > 1 ? total_ms / (stats.frames - 1) : 0;
    stats.mean_build_ms = stats.frames > 1 ? build_total_ms / (stats.frames - 1) : 0;
    return stats;
}

} // namespace cdrmix::ui
