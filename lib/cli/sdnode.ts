#!/usr/bin/env node
// sdnode: the command-line front end. Subcommands so far: system, devices.
import { listDevices, systemInfo } from '../system.js';

const HELP = `Usage: sdnode <command> [options]

Commands:
  system     Print the package and ggml versions, backends and CPU features
  devices    List the devices ggml can use, with their memory

Options:
  --json     Machine-readable output
  --help     Show this help
  --version  Print the package version`;

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function main(argv: string[]): number {
  const json = argv.includes('--json');
  const positional = argv.filter((a) => !a.startsWith('--'));
  const unknown = argv.filter((a) => a.startsWith('--') && !['--json', '--help', '--version'].includes(a));
  if (argv.includes('--help')) {
    console.log(HELP);
    return 0;
  }
  if (argv.includes('--version')) {
    console.log(systemInfo().version);
    return 0;
  }
  if (unknown.length > 0) {
    console.error(`sdnode: unknown option ${unknown[0]} (see sdnode --help)`);
    return 2;
  }
  switch (positional[0]) {
    case 'system': {
      const info = systemInfo();
      if (json) console.log(JSON.stringify(info, null, 2));
      else {
        console.log(`stable-diffusion-node ${info.version}`);
        console.log(`ggml ${info.ggml.version} (${info.ggml.commit})`);
        console.log(`backends: ${info.backends.join(', ')}`);
        console.log(`CPU features: ${info.cpuFeatures.join(' ')}`);
        console.log(`default threads: ${info.defaultThreads}`);
      }
      return 0;
    }
    case 'devices': {
      const devices = listDevices();
      if (json) console.log(JSON.stringify(devices, null, 2));
      else {
        for (const d of devices) {
          console.log(`${d.name}  ${d.type}  ${d.description}  ${gib(d.memoryFree)} free of ${gib(d.memoryTotal)}`);
        }
      }
      return 0;
    }
    case undefined:
      console.log(HELP);
      return 2;
    default:
      console.error(`sdnode: unknown command "${positional[0]}" (see sdnode --help)`);
      return 2;
  }
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  const verbose = process.argv.includes('--verbose');
  console.error(`sdnode: ${verbose && error instanceof Error ? error.stack : error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
