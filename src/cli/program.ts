// The command table: flags and help here, handlers in commands/*.ts loaded on use.
import { Command, Option } from 'commander';
import type { CliContext } from './context.js';

const EXAMPLES = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;

const onlyOption = () =>
  new Option('--only <kinds...>', 'only these kinds of paths').choices([
    'templates',
    'volatile',
    'persistent',
    'other',
  ]);
const configOption = () =>
  new Option('-c, --config <json>', 'configuration: inline JSON, @FILE, or - for standard input');

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('cloudlets')
    .description('Universal server images: one versioned root filesystem, out to every place a server runs')
    .version(process.env.npm_package_version ?? '0.1.0')
    .option('--manifest <file>', 'an off-band manifest instead of /.cloudlet/manifest inside the image')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    });

  // Handlers are imported when their command runs so that `--help` stays instant.
  const run =
    <A extends unknown[]>(load: () => Promise<{ run: (ctx: CliContext, ...args: A) => Promise<void> }>) =>
    async (...args: A) => {
      const mod = await load();
      await mod.run(ctx, ...args);
    };

  program
    .command('specs')
    .description("print the manifest's JSON Schema (draft 2020-12)")
    .addHelpText('after', EXAMPLES(['cloudlets specs > manifest.schema.json']))
    .action(run(() => import('./commands/specs.js')));

  program
    .command('manifest')
    .description('print the manifest of IMAGE with defaults filled in')
    .argument('<image>', 'image directory or tar archive (.tar, .tar.gz, .tar.zst)')
    .option('--json', 'machine-readable output (the manifest is JSON either way)')
    .addHelpText('after', EXAMPLES(['cloudlets manifest examples/sample.cloudlet']))
    .action(run(() => import('./commands/manifest.js')));

  program
    .command('validate')
    .description('validate a whole configuration against IMAGE and print it with defaults filled in')
    .argument('<image>', 'image directory or tar archive')
    .addOption(configOption())
    .option('--strict', 'unknown manifest fields are errors, not warnings')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([
        `cloudlets validate examples/sample.cloudlet --config '{"args":{"hostname":"web1"}}'`,
        'cloudlets validate examples/sample.cloudlet --config @config.json --strict',
      ]),
    )
    .action(run(() => import('./commands/validate.js')));

  program
    .command('validate-args')
    .alias('validate_args')
    .description("validate only the user arguments against IMAGE's args schema")
    .argument('<image>', 'image directory or tar archive')
    .argument('<args>', 'the arguments: inline JSON, @FILE, or -')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([`cloudlets validate-args examples/sample.cloudlet '{"hostname":"web1"}'`]),
    )
    .action(run(() => import('./commands/validate-args.js')));

  program
    .command('schema')
    .description("print IMAGE's configuration schema")
    .argument('<image>', 'image directory or tar archive')
    .option('--json', 'machine-readable output (the schema is JSON either way)')
    .addHelpText('after', EXAMPLES(['cloudlets schema examples/sample.cloudlet']))
    .action(run(() => import('./commands/schema.js')));

  program
    .command('find')
    .description('list the image-rooted paths of IMAGE')
    .argument('<image>', 'image directory or tar archive')
    .addOption(onlyOption())
    .option('-0, --null', 'end each path with NUL instead of newline (names may hold newlines)')
    .option('--json', 'machine-readable output: [{path, kind, type}]')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets find examples/sample.cloudlet',
        'cloudlets find examples/sample.cloudlet --only volatile',
        'cloudlets find img.tar.zst -0 | xargs -0 -n1 echo',
      ]),
    )
    .action(run(() => import('./commands/find.js')));

  program
    .command('tar')
    .description('write IMAGE as a POSIX pax archive, templates rendered, volatile paths left out')
    .argument('<image>', 'image directory or tar archive')
    .addOption(configOption())
    .addOption(onlyOption())
    .option('-o, --output <file>', 'output file, or - for standard output', '-')
    .option('-f, --force', 'overwrite an existing output file')
    .option(
      '--mtime <time>',
      'clamp every time to this (epoch seconds or ISO 8601); default $SOURCE_DATE_EPOCH',
    )
    .option('--template-timeout <seconds>', 'time limit for rendering each template', '10')
    .addHelpText(
      'after',
      EXAMPLES([
        `cloudlets tar examples/sample.cloudlet --config '{"args":{"hostname":"web1"}}' | tar -tv`,
        'cloudlets tar examples/sample.cloudlet -o sample.tar --mtime 2020-01-01T00:00:00Z',
        'SOURCE_DATE_EPOCH=0 cloudlets tar img.tar.gz -o - | gzip -n > img-configured.tar.gz',
      ]),
    )
    .action(run(() => import('./commands/tar.js')));

  program
    .command('config')
    .description('print the applied configuration, or render the templates of an image directory in place')
    .argument('<image>', 'image directory')
    .addOption(configOption())
    .option('-f, --force', 'configure again an image that is already configured')
    .option('--template-timeout <seconds>', 'time limit for rendering each template', '10')
    .option('--json', 'machine-readable output')
    .addHelpText(
      'after',
      EXAMPLES([
        'cloudlets config examples/sample.cloudlet',
        `cloudlets config ./myimage --config '{"args":{"hostname":"web1"}}'`,
        `cloudlets config ./myimage --config @prod.json --force`,
      ]),
    )
    .action(run(() => import('./commands/config.js')));

  program
    .command('init')
    .description('write a starter manifest for an existing root filesystem, saying what was detected and why')
    .argument('<dir>', 'root filesystem directory')
    .option('-f, --force', 'replace an existing manifest')
    .option('--dry-run', 'print the proposed manifest without writing it')
    .option('--json', 'machine-readable output')
    .addHelpText('after', EXAMPLES(['cloudlets init ./rootfs', 'cloudlets init ./rootfs --dry-run --json']))
    .action(run(() => import('./commands/init.js')));

  return program;
}
