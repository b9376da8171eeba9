// The checks shared by the C++ tests: CHECK counts and stops at the first
// failure; expect_error runs code that must throw obj::Error with a status.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "obj.hpp"

static int checks = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::exit(1);                                                           \
        }                                                                           \
    } while (0)

// Runs `body`, which must throw obj::Error with status `want`; returns its message.
template <typename F>
static std::string expect_error(obj_status want, F body) {
    checks++;
    try {
        body();
    } catch (const obj::Error &e) {
        if (e.status() != want) {
            std::fprintf(stderr, "expected %s, got %s\n", obj_status_name(want), e.what());
            std::exit(1);
        }
        return e.what();
    }
    std::fprintf(stderr, "expected %s, nothing was thrown\n", obj_status_name(want));
    std::exit(1);
}

static bool contains(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }
