// The translation unit that owns the in-tree plugins' shared precompiled LibTorch
// header (plugins/CMakeLists.txt); it defines nothing.
