// Entry point of the mtls-guard executable; all work happens in server/cli.
#include "server/cli/app.hpp"

int main(int argc, char** argv) {
    return mtlsguard::cli::run(argc, argv);
}
