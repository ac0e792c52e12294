// Checks dashboard screenshots for the GUI tests:
//   cdrmix_png_check A.png           A is not blank (many colours, no colour covering 95% of it)
//   cdrmix_png_check A.png B.png     both are not blank, have the same size, and differ in >= 100 pixels
#include <stb_image.h>

#include <cstdio>
#include <map>
#include <memory>

namespace {

struct Image {
    int w = 0, h = 0;
    std::unique_ptr<unsigned char, void (*)(void *)> px{nullptr, stbi_image_free};
};

bool load(const char *path, Image &img) {
    int channels = 0;
    img.px.reset(stbi_load(path, &img.w, &img.h, &channels, 3));
    if (!img.px) std::fprintf(stderr, "%s: cannot read PNG: %s\n", path, stbi_failure_reason());
    return static_cast<bool>(img.px);
}

bool not_blank(const char *path, const Image &img) {
    std::map<unsigned, long> counts;
    const long n = static_cast<long>(img.w) * img.h;
    long top = 0;
    for (long i = 0; i < n; ++i) {
        const unsigned char *p = img.px.get() + 3 * i;
        top = std::max(top, ++counts[(unsigned(p[0]) << 16) | (unsigned(p[1]) << 8) | p[2]]);
    }
    std::printf("%s: %dx%d, %zu colours, most common covers %.1f%%\n", path, img.w, img.h, counts.size(), 100.0 * top / n);
    return counts.size() >= 16 && top < n * 95 / 100;
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) {
        std::fprintf(stderr, "usage: cdrmix_png_check A.png [B.png]\n");
        return 2;
    }
    Image a, b;
    if (!load(argv[1], a) || !not_blank(argv[1], a)) return 1;
    if (argc == 2) return 0;
    if (!load(argv[2], b) || !not_blank(argv[2], b)) return 1;
    if (a.w != b.w || a.h != b.h) {
        std::fprintf(stderr, "sizes differ\n");
        return 1;
    }
    long differ = 0;
    for (long i = 0; i < static_cast<long>(a.w) * a.h * 3; i += 3)
        differ += a.px.get()[i] != b.px.get()[i] || a.px.get()[i + 1] != b.px.get()[i + 1] || a.px.get()[i + 2] != b.px.get()[i + 2];
    std::printf("%ld pixels differ\n", differ);
    return differ >= 100 ? 0 : 1;
}
