// The setup command's env file, parsed like godotenv v1.5.1 (the Go worker's
// parser): cases from godotenv's own tests plus the quirks a port must keep.
import { describe, expect, it } from 'vitest';
import { DotenvError, parseDotenv } from '../../src/backends/direct/dotenv.js';

const parses: Array<[name: string, input: string, expected: Array<[string, string]>]> = [
  ['plain value', 'FOO=bar', [['FOO', 'bar']]],
  ['space before =', 'FOO =bar', [['FOO', 'bar']]],
  ['space after =', 'FOO= bar', [['FOO', 'bar']]],
  ['double quotes', 'FOO="bar"', [['FOO', 'bar']]],
  ['single quotes', "FOO='bar'", [['FOO', 'bar']]],
  ['escaped double quote', 'FOO="escaped\\"bar"', [['FOO', 'escaped"bar']]],
  ['single quotes inside double', `FOO="'d'"`, [['FOO', "'d'"]]],
  ['yaml style', 'OPTION_A: 1', [['OPTION_A', '1']]],
  ['yaml style with = in value', 'OPTION_A: Foo=bar', [['OPTION_A', 'Foo=bar']]],
  ['colon in value', 'OPTION_A=1:B', [['OPTION_A', '1:B']]],
  ['export prefix', 'export OPTION_A=2', [['OPTION_A', '2']]],
  ['export with single-quoted escape', "export OPTION_B='\\n'", [['OPTION_B', '\\n']]],
  ['export then a name starting with export', 'export exportFoo=2', [['exportFoo', '2']]],
  ['export glued to the name', 'exportFOO=2', [['exportFOO', '2']]],
  ['export_ name', 'export_FOO =2', [['export_FOO', '2']]],
  ['export. name', 'export.FOO= 2', [['export.FOO', '2']]],
  ['export then tab', 'export\tOPTION_A=2', [['OPTION_A', '2']]],
  ['indented export', '  export OPTION_A=2', [['OPTION_A', '2']]],
  ['\\n in double quotes', 'FOO="bar\\nbaz"', [['FOO', 'bar\nbaz']]],
  ['dot in name', 'FOO.BAR=foobar', [['FOO.BAR', 'foobar']]],
  ['= in value', 'FOO=foobar=', [['FOO', 'foobar=']]],
  ['trailing space stripped', 'FOO=bar ', [['FOO', 'bar']]],
  ['inner space kept', 'KEY=value value', [['KEY', 'value value']]],
  ['inline comment', 'FOO=bar # this is foo', [['FOO', 'bar']]],
  ['# inside double quotes', 'FOO="bar#baz" # comment', [['FOO', 'bar#baz']]],
  ['# inside single quotes', "FOO='bar#baz' # comment", [['FOO', 'bar#baz']]],
  ['# without a space before it', 'bar=foo#baz', [['bar', 'foo#baz']]],
  ['value that starts with #', 'A=#notcomment', [['A', '#notcomment']]],
  ['the last " #" starts the comment', 'A=a # b # c', [['A', 'a # b']]],
  ['escapes in double quotes', 'FOO="bar\\n\\ b\\az"', [['FOO', 'bar\n baz']]],
  ['escaped backslash before n', 'FOO="bar\\\\\\n\\ b\\az"', [['FOO', 'bar\\\n baz']]],
  ['escaped backslash before r', 'FOO="bar\\\\r\\ b\\az"', [['FOO', 'bar\\r baz']]],
  ['empty key', '="value"', [['', 'value']]],
  ['indented key', ' KEY =value', [['KEY', 'value']]],
  ['tab-indented key', '\tKEY=value', [['KEY', 'value']]],
  ['empty value at end of file', 'A=', [['A', '']]],
  [
    'blank value',
    'A=  \nB=1',
    [
      ['A', ''],
      ['B', '1'],
    ],
  ],
  [
    'CRLF line ends',
    'A=1\r\nB="x"\r\n',
    [
      ['A', '1'],
      ['B', 'x'],
    ],
  ],
  ['comments and blank lines', '# top\n\n\t # indented\nA=1\n\n', [['A', '1']]],
  ['comment after a closing quote', 'baz="foo"#bar', [['baz', 'foo']]],
  [
    'text after a closing quote starts the next statement',
    'A="x" B=2',
    [
      ['A', 'x'],
      ['B', '2'],
    ],
  ],
  ['multi-line single quotes', "A='line 1\nline 2'", [['A', 'line 1\nline 2']]],
  ['escaped single quotes stay literal', "A='this is \\'quoted\\' here'", [['A', "this is \\'quoted\\' here"]]],
  ['a value ending in an escaped quote loses it (godotenv quirk)', "A='it is \\''", [['A', 'it is \\']]],
  ['multi-line double quotes', 'A="line one\nthis is \\"quoted\\"\none more"', [['A', 'line one\nthis is "quoted"\none more']]],
  [
    'empty quotes',
    `A=''\nB=""`,
    [
      ['A', ''],
      ['B', ''],
    ],
  ],
  ['space around = with quotes', 'THREE = "3"', [['THREE', '3']]],
  ['a space inside a name is kept (godotenv quirk)', 'FOO BAR=1', [['FOO BAR', '1']]],
  [
    'a last line without = becomes an empty key (godotenv quirk)',
    'A=1\nJUSTNAME',
    [
      ['A', '1'],
      ['', 'JUSTNAME'],
    ],
  ],
  ['non-ASCII letters whose UTF-8 bytes read as Latin-1 letters', 'àµ=1', [['àµ', '1']]],
  [
    'later definition wins, first position kept',
    'A=1\nB=2\nA=3',
    [
      ['A', '3'],
      ['B', '2'],
    ],
  ],
  // Expansion
  [
    '$VAR from an earlier line',
    'FOO=test\nBAR=$FOO',
    [
      ['FOO', 'test'],
      ['BAR', 'test'],
    ],
  ],
  [
    '${VAR}',
    'FOO=test\nBAR=${FOO}bar',
    [
      ['FOO', 'test'],
      ['BAR', 'testbar'],
    ],
  ],
  ['undefined variable is empty', 'BAR=$FOO', [['BAR', '']]],
  ['process env is not consulted', 'BAR=$HOME', [['BAR', '']]],
  [
    'a later definition is not seen',
    'BAR=$FOO\nFOO=x',
    [
      ['BAR', ''],
      ['FOO', 'x'],
    ],
  ],
  ['self reference sees the earlier value', 'A=1\nA=$A-2', [['A', '1-2']]],
  [
    'expansion in double quotes',
    'FOO=test\nBAR="quote $FOO"',
    [
      ['FOO', 'test'],
      ['BAR', 'quote test'],
    ],
  ],
  ['no expansion in single quotes', "BAR='quote $FOO'", [['BAR', 'quote $FOO']]],
  ['escaped $ in double quotes', 'FOO="foo\\$BAR"', [['FOO', 'foo$BAR']]],
  ['escaped ${} in double quotes', 'FOO="foo\\${BAR}"', [['FOO', 'foo${BAR}']]],
  [
    'escaped and plain together',
    'FOO=test\nBAR="foo\\${FOO} ${FOO}"',
    [
      ['FOO', 'test'],
      ['BAR', 'foo${FOO} test'],
    ],
  ],
  [
    'escaped $ unquoted',
    'FOO=x\nB=\\${FOO}',
    [
      ['FOO', 'x'],
      ['B', '${FOO}'],
    ],
  ],
  [
    'lower-case names are not expanded',
    'foo=1\nB=${foo}',
    [
      ['foo', '1'],
      ['B', '${foo}'],
    ],
  ],
  [
    'unclosed brace still expands',
    'FOO=x\nB=${FOO',
    [
      ['FOO', 'x'],
      ['B', 'x'],
    ],
  ],
  [
    '$( eats the parenthesis (godotenv quirk)',
    'FOO=x\nB=$(FOO)',
    [
      ['FOO', 'x'],
      ['B', 'x)'],
    ],
  ],
  ['a lone $ stays', 'B=cost $ 5', [['B', 'cost $ 5']]],
  [
    'substitutions fixture',
    'OPTION_A=1\nOPTION_B=${OPTION_A}\nOPTION_C=$OPTION_B\nOPTION_D=${OPTION_A}${OPTION_B}\nOPTION_E=${OPTION_NOT_DEFINED}',
    [
      ['OPTION_A', '1'],
      ['OPTION_B', '1'],
      ['OPTION_C', '1'],
      ['OPTION_D', '11'],
      ['OPTION_E', ''],
    ],
  ],
  [
    'plain fixture',
    'OPTION_A=1\nOPTION_B=2\nOPTION_C= 3\nOPTION_D =4\nOPTION_E = 5\nOPTION_F = \nOPTION_G=\nOPTION_H=1 2',
    [
      ['OPTION_A', '1'],
      ['OPTION_B', '2'],
      ['OPTION_C', '3'],
      ['OPTION_D', '4'],
      ['OPTION_E', '5'],
      ['OPTION_F', ''],
      ['OPTION_G', ''],
      ['OPTION_H', '1 2'],
    ],
  ],
  ['empty file', '', []],
  ['only whitespace', '\n\r\n \t\n', []],
];

describe('parseDotenv', () => {
  it.each(parses)('%s', (_name, input, expected) => {
    expect([...parseDotenv(input)]).toEqual(expected);
  });

  const errors: Array<[name: string, input: string, message: RegExp]> = [
    ['a $ in a name', 'lol$wut', /line 1: unexpected character "\$" in variable name/],
    ['a dash in a name', 'A=1\nMY-VAR=1', /line 2: unexpected character "-"/],
    ['a line without =', 'JUSTNAME\nA=1', /line 1: unexpected character a line break/],
    ['a symbol outside Latin letters', 'KEY©=1', /unexpected character "©"/],
    ['a letter whose UTF-8 bytes do not read as Latin-1 letters (godotenv quirk)', 'ÄBC=1', /unexpected character "Ä"/],
    ['an unterminated double quote', 'A=1\nB="abc', /line 2: unterminated quoted value for "B"/],
    ['an unterminated single quote', "A='abc\nB=1", /line 1: unterminated quoted value for "A"/],
  ];
  it.each(errors)('rejects %s', (_name, input, message) => {
    expect(() => parseDotenv(input)).toThrow(DotenvError);
    expect(() => parseDotenv(input)).toThrow(message);
  });

  it('never quotes a value in its error message', () => {
    let message = '';
    try {
      parseDotenv('TOKEN="ghp_secret_value_123\nOTHER=1');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/unterminated/);
    expect(message).not.toContain('ghp_secret_value_123');
  });
});
