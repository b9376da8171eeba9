/* Built against an installed libobj via pkg-config by `make test-install`. */
#include <obj.h>
#include <stdio.h>

int main(int argc, char **argv) {
    obj_db *db = NULL;
    if (argc < 2 || obj_db_open(argv[1], NULL, &db) != OBJ_OK) {
        fprintf(stderr, "open failed: %s\n", obj_last_error());
        return 1;
    }
    printf("installed libobj %s: 1 passed, 0 failed\n", obj_version());
    return obj_db_free(db) == OBJ_OK ? 0 : 1;
}
